# Hongshan — the whole set-up is `make demo` or `make test` on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test check format bench clean

LINKKIT_STAMP := .venv-linkkit/.installed
TB_STAMP      := .venv-tb/.installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# Alibaba's device SDK needs paho-mqtt 1.x: its own environment, for the device tests
$(LINKKIT_STAMP): tests/devices/linkkit-requirements.txt
	test -x .venv-linkkit/bin/python || $(PYTHON) -m venv .venv-linkkit
	.venv-linkkit/bin/python -m pip install --quiet -r tests/devices/linkkit-requirements.txt
	touch $(LINKKIT_STAMP)

# ThingsBoard's device SDK brings its own paho-mqtt fork: its own environment too
$(TB_STAMP): tests/devices/tb-requirements.txt
	test -x .venv-tb/bin/python || $(PYTHON) -m venv .venv-tb
	.venv-tb/bin/python -m pip install --quiet -r tests/devices/tb-requirements.txt
	touch $(TB_STAMP)

install: $(STAMP) $(LINKKIT_STAMP) $(TB_STAMP)

# A sandbox: anonymous access, data in ./hongshan-data. Another broker on 1883?
# `make demo MQTT_PORT=1884`.
MQTT_PORT ?= 1883
HTTP_PORT ?= 8080
demo: $(STAMP)
	$(BIN)/hongshan serve --allow-anonymous --mqtt-port $(MQTT_PORT) --http-port $(HTTP_PORT)

test: $(STAMP) $(LINKKIT_STAMP) $(TB_STAMP)
	$(BIN)/pytest

# lint-imports: the import contracts in pyproject.toml, checked on this tree's src (grimp
# imports hongshan by name, and the editable install may point at another checkout)
check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check --no-cache src tests bench
	$(BIN)/mypy
	PYTHONPATH=src $(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .venv-linkkit .venv-tb hongshan-data .pytest_cache .mypy_cache .ruff_cache
