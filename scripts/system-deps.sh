#!/usr/bin/env bash
# Installs the Debian packages the testbed needs (audio I/O, JACK for the audio
# tests, speech synthesisers for the corpus, Chromium for the report test).
# As root it runs apt-get; otherwise it prints the exact command and exits 2.
set -euo pipefail
PKGS=(libportaudio2 portaudio19-dev jackd2 libsndfile1 flite festival
      festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts chromium)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing system packages: ${missing[*]}" >&2
  echo "run as root:  $cmd" >&2
  exit 2
fi
echo "installing system packages: ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
