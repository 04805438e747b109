# The two commands of the README:
#   make demo   - set up (system packages, venv, models) and run the appliance on the simulated gate,
#                 web UI on http://127.0.0.1:8080
#   make test   - set up and run the test suite
VENV := .venv
STAMP := $(VENV)/.setup-done
TRAIN_STAMP := $(VENV)/.train-done
export ORT_DISABLE_TELEMETRY := 1
export YOLO_OFFLINE := 1

.PHONY: demo test setup lint eval bench clean i18n-extract

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

# The tests also train a tiny detector: they need the train extra (torch, ultralytics); the demo does not.
$(TRAIN_STAMP): $(STAMP)
	EXTRAS=dev,train bash scripts/setup.sh
	touch $(TRAIN_STAMP)

setup: $(TRAIN_STAMP)

demo: $(STAMP)
	$(VENV)/bin/appliance demo --workdir var/demo

test: $(TRAIN_STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check appliance tests
	$(VENV)/bin/mypy appliance

eval: $(STAMP)
	$(VENV)/bin/appliance eval qr --data ../shared/eval/qr --json var/eval-qr.json
	$(VENV)/bin/appliance eval plates --data ../shared/eval/plates --json var/eval-plates.json
	$(VENV)/bin/appliance eval containers --data ../shared/eval/containers --json var/eval-containers.json
	$(VENV)/bin/appliance eval sim --vehicles 200 --seed 2026 --json var/eval-sim.json

bench: $(STAMP)
	$(VENV)/bin/appliance bench lane

clean:
	rm -rf var/demo

# Web UI text: re-extract the message keys the code and templates use (babel.cfg) into
# appliance/web/locale/messages.pot and merge them into the vi, en and zh catalogues (.po, read at
# import: there is nothing to compile). New keys arrive untranslated: tests/web/test_i18n.py fails
# until each has its text in all three.
I18N_DIR := appliance/web/locale
i18n-extract: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg --sort-output --add-location=file --no-wrap \
		--project=gate-appliance --copyright-holder="gate-appliance contributors" \
		--msgid-bugs-address=gate-appliance@localhost -o $(I18N_DIR)/messages.pot .
	$(VENV)/bin/pybabel update -i $(I18N_DIR)/messages.pot -d $(I18N_DIR) -D messages \
		--no-fuzzy-matching --no-wrap --ignore-pot-creation-date
