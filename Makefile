# PumpStream: `make run` sets everything up and starts the whole system; `make test` sets up and tests.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
WEB_PORT ?= 8000
MQTT_PORT ?= 1883
export WEB_PORT MQTT_PORT
# Development is one explicit switch; with DJANGO_DEBUG unset the settings are production's (secrets required).
run test test-postgres bench setup setup-test: export DJANGO_DEBUG = true

.PHONY: run test test-postgres setup setup-test lint format bench clean

run: setup
	@$(PY) manage.py migrate --noinput
	@$(PY) manage.py seed_demo
	@$(PY) manage.py collectstatic --noinput -v0
	@scripts/banner.sh
	@$(VENV)/bin/honcho start -f Procfile

# The suite runs on TEST_WORKERS pytest-xdist workers (tests/support/xdist.py: a module sharing real processes
# stays on one worker, the browser tests in TEST_BROWSER_UNITS units, each on one worker, the long units first, the
# CPU-loading flood tests last and alone). The tests mostly wait on real processes, so their waits overlap even on 2
# cores: 3 workers with the browser tests in 2 units ran the suite in 11:06 against 14:22 for 2 workers and one
# browser unit (2026-12-06, fresh clones alone on 2 cores: the CPU still 29 % idle, a run queue of 6 on average),
# which kept `make test` at the edge of its 15 minutes. (3 workers beside other sessions' tests, at a load of 10-13,
# once outlasted the 20 s bridge start.) By 2026-12-07 the suite had grown to 3,100 s of test time: 3 workers took
# 16:26 (CI on 1449031), 4 workers with the browser tests in 3 units 14:47 (a fresh clone alone, the CPU 5-15 % idle:
# the suite is now CPU-bound, so more workers gain nothing). 2026-12-07, timelines of whole runs (`python -m pytest
# -p tests.support.timeline`, quiet machine): 4 workers 909 and 931 s, every worker busy to 860-885 s then the ALONE
# unit, the CPU 17-18 % idle; 5 workers 888 s (11 % idle, the longest browser unit 813 s): within the runs' spread,
# not taken. CI on fresh clones of about the same suite, later that day: pytest 16:17, 17:07 and 14:27 (the machine's
# speed). Hidden timing assumptions in tests are looked for with three CPU hogs (`python3 -c 'while True: pass'`)
# beside `pytest -n 4`: 19:36 and 22:50, one failure found and fixed (test_waiting_window_late_puback.py).
# Chromium was the suite's largest CPU (2026-12-07, a full run's processes: chromium 472 s, the workers 240 s, 137
# bridges 170 s, Daphne 90 s; 12:53): the browser tests now keep a page for the next test where it can be
# (tests/support/page_shelf.py); the browser tests alone, one after the other on a quiet machine: 10:27 and chromium
# 494 s before, 9:15 and 320 s with it.
# TEST_WORKERS=0 runs serially (for debugging; plain `pytest` too).
TEST_WORKERS ?= 4
TEST_BROWSER_UNITS ?= 3
export TEST_BROWSER_UNITS
# test-postgres (no 15-minute bound; CI runs it after `test`) keeps 2 workers: its cluster is the third process
# each test waits on.
POSTGRES_WORKERS ?= 2
test: setup-test
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest -n $(TEST_WORKERS)

# The database-dependent tests again on PostgreSQL (a cluster of their own, started by tests/support/postgres.py
# on a free port): the services and selectors, the bridge's commit path, and the bridge, Daphne and realtime
# integration tests with both subprocesses on the same PostgreSQL test database (one cluster; under xdist each
# worker has its own test database in it). CI runs it after `test`.
# Also the clinical, ops and hostile-input tests (all passed there, 2026-12-03, at a load of 13-18). Left out: the
# alarm-flood timing test (it measures the bridge against the broker's floor, one engine is enough), the demo's
# supervision (no database of its own), the browser tests (on `test` only). The broker-restart test is in: its misses
# under load ('not every acknowledged message reached the database') were the report budget shedding its pumps'
# statuses (5 a second, the budget's own rate) after the outage; the burst now holds a pump's hour of reports.
# The simulator tests are in (their 'retained online status never arrived' was simulate_pump's Django boot, 6 s
# at a load of 4, inside the test's 10 s: the start now waits for the boot). POSTGRES_FAILING names tests still failing
# there (the 3,000-status SIGKILL test, no longer: it ran out of its 60 s at a load of 15-17 until a status cost 6
# statements and a third of the bridge's CPU; docs/operations.md). The fuzz tests are in since a random seed found a
# URL's `%00` a 500 on PostgreSQL alone (it refuses NUL in text). Exit 5 (no test) fails the target as any
# non-zero exit does.
POSTGRES_TESTS ?= tests/devices tests/realtime/bridge tests/realtime/sio tests/realtime/test_fanout.py tests/realtime/test_publisher_order.py \
	tests/realtime/test_publisher.py tests/realtime/fuzz \
	tests/integration/bridge tests/integration/realtime tests/integration/hostile/test_poison_message.py \
	tests/integration/hostile/test_two_daphnes_rights.py tests/integration/scaleout tests/integration/simulator \
	tests/integration/reliability/test_database_locked.py tests/integration/reliability/test_daphne_restart.py \
	tests/integration/reliability/test_broker_restart.py \
	tests/integration/reliability/test_pump_disconnect.py tests/integration/reliability/test_security.py \
	tests/clinical tests/ops tests/integration/hostile/test_broker_identity.py tests/integration/hostile/test_edges.py \
	tests/integration/hostile/test_internal_road.py tests/integration/hostile/test_rights_while_connected.py \
	tests/integration/hostile/test_socket_cap.py tests/integration/reliability/test_hostile_input.py
# None left: test_consistency_across_processes's second defect (a session running again after its end, confirmed
# late, held in a fresh snapshot the progress live subscribers had dropped at its end) is fixed (issue 18).
POSTGRES_FAILING ?=
# Then, serially, the tests that stop and start the run's own cluster (a PostgreSQL restart under watching screens,
# reviews 34, 38 and 40): under xdist the cluster is the controller's and the other worker's tests use it, so they skip
# there and run here, one pytest of their own (`-n 0`).
POSTGRES_SERIAL_TESTS ?= tests/integration/scaleout/test_socketio_served_after_a_database_restart.py \
	tests/integration/scaleout/test_escalation_reaches_the_charge_nurse_after_a_database_restart.py \
	tests/integration/scaleout/test_ward_feed_keeps_changes_through_a_database_blip.py \
	tests/integration/scaleout/test_subscriptions_asked_while_the_database_is_down.py \
	tests/browser/test_monitor_during_a_database_outage.py
test-postgres: setup-test
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) -m pytest -n $(POSTGRES_WORKERS) -p tests.support.postgres $(POSTGRES_TESTS) $(addprefix --deselect ,$(POSTGRES_FAILING))
	$(PY) -m pytest -n 0 -p tests.support.postgres $(POSTGRES_SERIAL_TESTS)

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# Benchmarks (never part of `make test`); results in bench/results/. Default (LEVEL=compare): PumpStream against
# the seed-style Node relay and the bare Python stack, alternated 3 times, at 400 and 1,000 msg/s, then the
# reconnect storm, PumpStream's also with one subscribe:devices per client, and first each target's idle CPU
# over 60 s without and with 100 idle clients (bench/compare.py, bench/storm.py, bench/idle.py). LEVEL=smoke|hospital|large|ramp: bench/run.py's levels.
# LEVEL=ingest (~9 minutes): the bridge against a bare paho subscriber storing the same messages in SQLite, at 400,
# 1,000 and 2,000 msg/s, alternated 3 times (bench/ingest.py, bench/bare_ingest.py).
# LEVEL=scaleout (bench/scaleout.py, ~10 minutes): PostgreSQL + Redis started on free ports, 1 and 2 Daphne x 1 and 2
# bridges (BRIDGE_SLOTS=2) alternated 3 times at 400 and 1,000 msg/s, the watchers split between the Daphne processes;
# delivered, loss, p50/p99 and the CPU per message of every process. Needs PostgreSQL and redis-server
# (`CI=true scripts/setup.sh --test` as root installs both).
# LEVEL=flood (~4 minutes): issue 15's alarm flood through the whole system, 6 runs with the flooding pump's process at
# nice 0 and 6 at nice 19, alternated (bench/alarm_flood.py).
bench: setup-test
	@if [ "$(or $(LEVEL),compare)" = compare ]; then $(PY) -m bench.compare --rates 400,1000 --storm-rates 400,1000 --storm-batched --idle 60; \
	elif [ "$(LEVEL)" = ingest ]; then $(PY) -m bench.ingest; \
	elif [ "$(LEVEL)" = scaleout ]; then $(PY) -m bench.scaleout --rates 400,1000 --rounds 3 --duration 8; \
	elif [ "$(LEVEL)" = flood ]; then $(PY) -m bench.alarm_flood --pairs 6; \
	else $(PY) -m bench.run --level $(LEVEL); fi

clean:
	rm -rf $(VENV) node_modules static/vendor staticfiles db.sqlite3* test-db.sqlite3*
