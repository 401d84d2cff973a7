"""The intake's rate limit."""

from babelfish.intake import TokenBucket


def test_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert bucket.take(3.0, now=0.0)
    assert not bucket.take(0.5, now=0.0)
    assert bucket.take(2.0, now=1.0)  # one second refills two
    assert not bucket.take(4.0, now=100.0)  # never more than the burst
