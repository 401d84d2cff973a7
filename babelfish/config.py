"""All server settings in one place: defaults, `BABELFISH_*` environment variables, CLI flags.

Server limits live here and only here; nothing a client sends can raise them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["auto", "cascade", "seamless", "test"]
AccessMode = Literal["open", "passcode", "token"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BABELFISH_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name="server_cpu.py",
        extra="ignore",
    )

    # --- serving ---
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(9000, ge=0, le=65535, description="TCP port to listen on (0 picks a free one)")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log verbosity")
    data_dir: Path = Field(Path("data"), description="where assembled models, certificates and state are kept")
    https: bool = Field(False, description="serve HTTPS/WSS (phones only give the microphone to secure pages)")
    certfile: Path | None = Field(
        None, description="TLS certificate (PEM); default: one from a local CA made in data_dir/tls"
    )
    keyfile: Path | None = Field(None, description="TLS private key (PEM) for certfile")

    # --- access (docs/deployment.md: the policy) ---
    access: AccessMode = Field(
        "open", description="open: anyone who reaches the port; passcode: rooms need one; token: every user needs one"
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="web origins besides the server's own that may open the WebSocket"
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="proxies whose X-Forwarded-For names the client (addresses or networks)",
    )

    # --- cluster ---
    redis_url: str = Field(
        "",
        description="join a cluster through Redis: redis://[:password@]host:port/db, rediss:// for TLS; empty: alone",
    )
    cluster_heartbeat_seconds: float = Field(
        1.0, gt=0, le=30, description="cluster heartbeat; a server silent for 3 beats is taken for dead"
    )

    # --- transcripts (babelfish/transcripts.py) ---
    transcript_max_utterances: int = Field(
        2000, ge=1, description="utterances each room's transcript keeps in memory; the oldest goes beyond"
    )
    transcript_retention: bool = Field(
        False, description="also keep transcripts on disk (data_dir/transcripts); off: nothing is written"
    )
    transcript_retention_days: float = Field(
        30.0, gt=0, description="transcript files older than this are deleted (with transcript_retention)"
    )

    # --- engine ---
    engine: EngineName = Field("auto", description="auto: seamless when its weights are local, else cascade")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where models run")
    threads: int = Field(1, ge=1, le=256, description="CPU threads for each inference worker")
    inference_workers: int = Field(2, ge=1, le=16, description="engine calls run at once, each with `threads`")
    vad_workers: int = Field(2, ge=1, le=16, description="threads cutting every client's audio into utterances")
    inference_queue_max: int = Field(
        8, ge=1, le=1000, description="utterances waiting for the engine, all speakers; beyond, one is skipped"
    )
    inference_max_wait_seconds: float = Field(
        1.5, gt=0, le=60, description="an utterance that waits this long for the engine is skipped"
    )
    speech_max_wait_seconds: float = Field(
        3.0, gt=0, le=60, description="speech that could not start this long after its text went out is skipped"
    )
    seamless_model: str = Field(
        "facebook/seamless-m4t-v2-large", description="SeamlessM4T model id in the HF cache, or a local folder"
    )
    asr_model: str = Field(
        "", description="faster-whisper model: a local folder or a model name in the HF cache; empty: shipped base"
    )
    asr_compute_type: str = Field("int8", description="CTranslate2 compute type for ASR")
    asr_beam_size: int = Field(
        5, ge=1, le=10,
        description="beam width of an utterance's first transcription while the engine is not behind (greedy when "
        "it is, to keep up); 1: always greedy",
    )  # fmt: skip
    mt_models: list[Path] = Field(
        default_factory=list, description="extra MT model folders (CTranslate2 or transformers: NLLB, opus-mt, M2M-100)"
    )
    apertium_pipelines: int = Field(
        16, ge=1, le=64, description="apertium pairs kept running at once; the least recently used stops for another"
    )
    apertium_memory_mib: float = Field(
        2560.0, gt=0, description="memory running apertium pairs may hold (one takes 40-620 MiB); LRU ones stop beyond"
    )
    apertium_idle_seconds: float = Field(
        900.0, gt=0, description="an apertium pair unused this long is stopped (it restarts on its next use)"
    )
    route_memory_weight: float = Field(
        1.5,
        ge=0,
        le=100,
        allow_inf_nan=False,  # inf makes every merit -inf or NaN: routing by chance
        description="chrF points a translation route may give up per 100 MiB of apertium pipelines saved; 0: chrF only",
    )
    phrasebook: bool = Field(
        True,
        description='cascade engine: translate set phrases said as whole turns ("Thank you.", "Of course.", '
        '"Sorry?") from the shipped phrasebook rather than the routes, which do worst on them; also where no route '
        "joins two languages",
    )
    natural_voices: bool = Field(True, description="use a natural TTS voice where one is installed")
    kokoro_voice: bool = Field(
        False, description="speak Portuguese with Kokoro-82M: far clearer than espeak-ng, but seconds late on 2 cores"
    )

    partials: bool = Field(
        True, description="streaming partials: the words on screen while someone speaks (cascade and test engines)"
    )
    partial_interval_seconds: float = Field(
        0.5, ge=0.1, le=10, description="time between one speaker's partial updates, at least (longer when busy)"
    )

    # --- segmentation ---
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="speech probability that counts as speech")
    vad_silence_ms: int = Field(300, ge=60, le=5000, description="silence that ends an utterance")
    # The first pass of an utterance starts this far into the silence that ends it, on exactly what the cut will read
    # (the rest of that silence is read as zero, by both), while the VAD still waits to be sure: the cut then finds its
    # words read (babelfish/early.py; docs/benchmarks.md, "Early reads").
    early_read_ms: int = Field(
        100, ge=0, le=5000, description="start reading an utterance this far into its final silence (0: off)"
    )
    # Voiced time (32 ms windows) under which a burst is dropped. Pico's "Oui." and Spanish "No." have 7-8 voiced
    # windows, so at 250 ms (Silero's own default) they were dropped at about half of the window alignments; the
    # measured noises never start a segment, and babble gained one segment, rejected (docs/benchmarks.md, "One-syllable
    # replies were dropped"; coughs and laughs not measured).
    vad_min_speech_ms: int = Field(160, ge=0, le=5000, description="shorter bursts are dropped as noise")
    vad_preroll_ms: int = Field(200, ge=0, le=2000, description="audio kept from before speech starts")
    max_utterance_seconds: float = Field(15.0, gt=0.5, le=120, description="an utterance is cut at this length")
    vad_energy_gate_dbfs: float = Field(
        -55.0, ge=-120, le=0, description="audio windows quieter than this are silence without running the VAD model"
    )
    # In a crowd that never stops (a café), Silero takes the crowd for speech and turns never end: there, a window is
    # voice only this far over the phone's background (babelfish/background.py; docs/benchmarks.md, "A crowd that
    # never stops").
    vad_crowd_margin_db: float = Field(
        8.0, ge=0, le=40, description="in a crowd, speech must be this many dB over the background (0 turns this off)"
    )

    # --- turns and revisions (babelfish/turns.py, babelfish/revisions.py) ---
    revisions: bool = Field(
        True, description="re-decode a speaker's turn cut at breath pauses once it ends, and send the corrected text"
    )
    turn_gap_seconds: float = Field(
        1.2, gt=0, le=10, description="a pause up to this long between one speaker's utterances continues their turn"
    )
    turn_max_seconds: float = Field(
        28.0, ge=1, le=30, description="a turn's audio is re-decoded in one window: at most this long (Whisper: 30 s)"
    )
    revision_single_pieces: bool = Field(
        True,
        description="revise a one-utterance turn too, once the engine is idle and nobody speaks (if words change)",
    )
    revision_context: bool = Field(
        True,
        description="decode a turn's revision as the continuation of what the same voice said just before through "
        "the same phone",
    )
    revision_beam_size: int = Field(5, ge=1, le=10, description="beam width of a revision's re-decode")
    revision_max_wait_seconds: float = Field(
        5.0, gt=0, le=60, description="a revision that waits this long for the engine is skipped"
    )

    # --- one phone per voice (babelfish/echoes.py) ---
    one_phone_per_voice: bool = Field(
        True,
        description="when several phones in a room hear the same speech, translate and deliver only the best copy "
        "(the others are shown as heard by those phones)",
    )
    one_phone_wait_ms: int = Field(
        600, ge=0, le=3000, description="longest a copy waits for another phone's copy of the same speech"
    )
    one_phone_similarity: float = Field(
        0.55, gt=0, lt=1, description="envelope correlation at which two phones' copies count as the same speech"
    )

    # --- speakers (who is speaking) ---
    speaker_embedder: Literal["auto", "resemblyzer", "pyannote", "off"] = Field(
        "auto",
        description="voice recognition: auto (pyannote when its weights are local, else resemblyzer); off: "
        "every utterance is labelled with its client's name and no voice data is stored",
    )
    speaker_model: str = Field(
        "pyannote/wespeaker-voxceleb-resnet34-LM",
        description="pyannote embedding model: an id in the HF cache (gated: token and accepted terms) or a folder",
    )
    speaker_threshold: float = Field(
        0.72, gt=0, lt=1, description="cosine similarity at which a voice counts as a known speaker"
    )
    speaker_min_seconds: float = Field(
        1.5, ge=0, le=30, description="shorter utterances are not embedded: they keep the client's last speaker"
    )
    speaker_refine_max: int = Field(
        20, ge=1, le=10_000, description="a known voice is refined with its utterances, averaged over this many"
    )
    speaker_backups: int = Field(7, ge=0, le=1000, description="automatic speaker backups kept (0: none)")
    speaker_backup_hours: float = Field(24.0, gt=0, le=24 * 365, description="hours between automatic backups")

    # --- limits ---
    max_frame_bytes: int = Field(64_000, ge=512, description="largest binary frame accepted")
    max_text_bytes: int = Field(4_096, ge=256, description="largest JSON control message accepted")
    max_clients_per_room: int = Field(500, ge=1, description="participants per room")
    max_rooms: int = Field(100, ge=1, description="rooms per server")
    max_name_chars: int = Field(40, ge=1, le=200, description="longest participant name")
    send_queue_max: int = Field(
        2048, ge=4, description="messages queued for one client before it is dropped as too slow"
    )
    send_queue_max_bytes: int = Field(
        8_000_000, ge=65_536, description="bytes queued for one client before it is dropped as too slow"
    )
    pending_utterances_max: int = Field(
        4, ge=1, description="utterances queued per speaker; the oldest is dropped beyond"
    )
    max_audio_rate: float = Field(3.0, ge=1.0, description="audio accepted per second, in seconds (× real time)")
    audio_burst_seconds: float = Field(
        60.0, ge=1.0, description="audio a client may send at once beyond max_audio_rate (e.g. a recording)"
    )
    max_connections_per_address: int = Field(32, ge=1, description="open WebSockets from one client address")
    max_joins_per_minute: int = Field(60, ge=1, description="WebSockets one client address may open a minute")
    max_rooms_per_minute: int = Field(10, ge=1, description="rooms one client address may create a minute")
    max_header_bytes: int = Field(16_384, ge=1024, description="largest HTTP request head (request line and headers)")
    max_headers: int = Field(100, ge=8, description="most HTTP request headers")
    max_control_rate: float = Field(20.0, gt=0, description="control messages accepted per second from one client")
    control_burst: float = Field(
        50.0, ge=1, description="control messages a client may send at once beyond max_control_rate"
    )
    vad_backlog_seconds: float = Field(
        10.0, gt=0, description="audio of one client waiting for the VAD; beyond, frames are dropped (it is told)"
    )
    send_timeout_seconds: float = Field(
        10.0, gt=0, le=30, description="a client that takes nothing for this long is dropped as too slow"
    )
    drain_seconds: float = Field(
        10.0, ge=0, le=60, description="at shutdown or hang-up, time to finish what was already said"
    )
    join_timeout_seconds: float = Field(10.0, gt=0, description="time a new connection has to send join")
    allowed_sample_rates: list[int] = Field(
        default_factory=lambda: [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000],
        description="sample rates a client may declare",
    )
