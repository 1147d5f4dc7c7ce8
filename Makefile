# Each target bootstraps .venv on a fresh machine (Python 3.11 + pip is all it needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgepool-installed

.PHONY: demo test bench lint clean system-deps

# System packages of the device tests (tests/devices): an OpenSSH server and client for the sshd on
# 127.0.0.1, qemu-user-static + mmdebstrap for the emulated Raspberry Pi. Installed only when missing
# (dpkg -s), as root, quietly; the Pi image itself is built once and cached (tests/devices/build_pi.py).
# chromium: the headless browser the HTML report test opens the report in. kotlin (kotlinc 1.3, ~90 MB with
# its Java libraries): compiles the Android example's plain-Kotlin code in tests/integration/test_android_kotlin.py.
SYSTEM_PACKAGES := openssh-server openssh-client qemu-user-static mmdebstrap chromium kotlin

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	  else echo "note: the device tests need$$missing (apt-get install, as root)"; fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgepool demo

test: $(STAMP) system-deps
	$(BIN)/ruff check edgepool tests benchmarks
	-@$(BIN)/python tests/devices/build_pi.py >/dev/null
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/quantization.py
	$(BIN)/python benchmarks/inspect_model.py
	$(BIN)/python benchmarks/harness.py
	$(BIN)/python benchmarks/coreml.py
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/energy.py

lint: $(STAMP)
	$(BIN)/ruff check edgepool tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
