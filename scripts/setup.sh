#!/usr/bin/env bash
# Install everything BabbleFish needs on a fresh Debian/Ubuntu machine. Safe to run again: it only
# installs what is missing. `--test` adds what the test suite needs (browser, speech clips, sox, nginx,
# node for the page tests, systemd-analyze). `--venv DIR` makes a virtual environment in DIR (if missing)
# and installs into it: the service (babelfish.service) runs /opt/babelfish/venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."

# apertium pairs: with the pivots the router finds, these serve every ordered pair among en, es, pt, fr, it and ca
# (docs/benchmarks.md has the measured quality per pair). There is no German pair in Debian.
runtime_debs=(espeak-ng apertium apertium-eng-spa apertium-fr-es apertium-es-pt apertium-eng-cat apertium-fra-cat
  apertium-cat-ita apertium-spa-ita apertium-spa-cat apertium-por-cat)
test_debs=(pocketsphinx-testdata chromium sox nginx redis-server nodejs systemd)
pip_files=(-r requirements_server.txt)
debs=("${runtime_debs[@]}")
venv=""
test=""
while (($#)); do
  case "$1" in
    --test) test=1; debs+=("${test_debs[@]}"); pip_files+=(-r requirements_test.txt) ;;
    --venv) venv=${2:?--venv needs a folder}; debs+=(python3-venv); shift ;;
    *) echo "usage: $0 [--test] [--venv DIR]" >&2; exit 2 ;;
  esac
  shift
done

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Coughs, sneezes and laughs recorded by people (Scratch 1.4's sound library, CC-BY-SA-3.0) for the tests of sounds
# that are not words: only those files are unpacked from Debian's package, which is never installed.
sounds=/usr/local/share/babelfish-test/sounds
if [[ -n "$test" && ! -f "$sounds/copyright" ]]; then  # the copyright file is copied last
  echo "[setup] unpacking the test sounds into $sounds"
  deb_dir=$(mktemp -d)
  trap 'rm -rf "$deb_dir"' EXIT
  if ! (cd "$deb_dir" && apt-get download -qq scratch); then
    $sudo apt-get update -qq
    (cd "$deb_dir" && apt-get download -qq scratch) ||
      { echo "[setup] Debian's scratch package (the test sounds) is not in this archive" >&2; exit 1; }
  fi
  dpkg-deb --fsys-tarfile "$deb_dir"/scratch_*.deb |
    tar -x -C "$deb_dir" ./usr/share/scratch/Media/Sounds/Human ./usr/share/doc/scratch/copyright
  $sudo mkdir -p "$sounds"
  $sudo cp -r "$deb_dir/usr/share/scratch/Media/Sounds/Human" "$sounds/"
  $sudo cp "$deb_dir/usr/share/doc/scratch/copyright" "$sounds/copyright"
  rm -rf "$deb_dir"
  trap - EXIT
fi

PYTHON=${PYTHON:-$(command -v python || command -v python3)}
if [[ -n "$venv" ]]; then
  [[ -x "$venv/bin/python" ]] || { echo "[setup] creating virtual environment $venv"; "$PYTHON" -m venv "$venv"; }
  PYTHON="$venv/bin/python"
fi
echo "[setup] installing Python packages (${pip_files[*]})"
"$PYTHON" -m pip install -q --disable-pip-version-check "${pip_files[@]}"
"$PYTHON" -m pip install -q --disable-pip-version-check --no-deps -r requirements_nodeps.txt
"$PYTHON" scripts/torchaudio_cpu.py
echo "[setup] done"
