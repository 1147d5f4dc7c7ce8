#!/bin/sh
# edgepool on a Raspberry Pi: a venv with a TFLite runtime on the Pi, then check and benchmark it from
# the computer that holds your runs. Run the two halves where they say; nothing here needs root on the
# computer. Tested steps, POSIX sh; each step prints what it does.
#
#   On the Pi:        sh quickstart.sh pi                 (Raspberry Pi OS 12 "bookworm", 64-bit)
#   On the computer:  sh quickstart.sh host RUN [PI]      (PI default: pi@raspberrypi.local)
#
# Edge TPU (Coral USB): on the Pi also run `sh quickstart.sh coral` (adds Google's apt repository and
# libedgetpu1-std; replug the Coral afterwards).
set -eu

VENV="${EDGEPOOL_PI_VENV:-$HOME/edgepool-venv}"

pi() {
    echo "== a venv for the TFLite runtime at $VENV"
    sudo apt-get install -y python3-venv python3-pip
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --upgrade pip
    # tflite-runtime 2.14 is the last release with aarch64 wheels for Python 3.11 and needs numpy<2;
    # ai-edge-litert (LiteRT, its successor) runs newer models: edgepool profiles name the one they need
    if ! "$VENV/bin/pip" install "ai-edge-litert" "numpy"; then
        "$VENV/bin/pip" install "tflite-runtime==2.14.0" "numpy<2"
    fi
    "$VENV/bin/pip" install Pillow   # only for examples/raspberry-pi/classify.py on PNG/JPEG
    "$VENV/bin/python" -c "import numpy; print('numpy', numpy.__version__)"
    echo "== done. On the computer: sh quickstart.sh host RUN $(whoami)@$(hostname).local"
    echo "   (its device URI: ssh://$(whoami)@$(hostname).local?python=$VENV/bin/python)"
}

coral() {
    echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list
    curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo gpg --dearmor -o /etc/apt/trusted.gpg.d/coral-edgetpu.gpg
    sudo apt-get update
    sudo apt-get install -y libedgetpu1-std
    echo "== replug the Coral USB Accelerator, then: python3 classify.py EXPORT IMAGES --edgetpu"
}

host() {
    run="${1:?usage: sh quickstart.sh host RUN [user@host]}"
    target="${2:-pi@raspberrypi.local}"
    device="ssh://$target?python=$VENV_ON_PI/bin/python"
    echo "== can the computer reach the Pi without a password? (ssh-copy-id $target once if not)"
    ssh -o BatchMode=yes "$target" true
    echo "== what the Pi has, and what each profile still needs"
    edgepool devices check "$device"
    edgepool devices add pi "$device" || true   # name it once: later commands say --device pi
    echo "== an export for the Pi's runtime (verified here), then measured there"
    edgepool convert "$run" --profile raspberry-pi-5
    edgepool benchmark "$run/exports/raspberry-pi-5" --device "$device" --profile raspberry-pi-5
    echo "== classify a few images on the Pi with the export: copy it and classify.py over"
    scp -r "$run/exports/raspberry-pi-5" "$(dirname "$0")/classify.py" "$target:"
    echo "   then on the Pi: $VENV_ON_PI/bin/python classify.py raspberry-pi-5 IMAGES..."
}

VENV_ON_PI="${EDGEPOOL_PI_VENV:-/home/${PI_USER:-pi}/edgepool-venv}"
case "${1:-}" in
    pi) pi ;;
    coral) coral ;;
    host) shift; host "$@" ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
esac
