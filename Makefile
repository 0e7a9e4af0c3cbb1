# The entry points. Each target installs what it needs (moto through pip) and starts what it
# uses; nothing has to be running beforehand.
.PHONY: demo test lint build bench sim api-check deploy-check

# The main job on the local AWS: start moto, bootstrap, apply examples/, print `clawfleet get`.
demo:
	tools/demo.sh

# Every test, against one moto_server started for the run.
test:
	tools/test.sh

# Schemathesis against `clawfleet serve` on moto, with a tenant's token (docs/api.md).
api-check:
	tools/schemathesis.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

build:
	cargo build --workspace --locked

# The benchmark (docs/benchmarks.md): the controller against moto behind a proxy that throttles,
# pages and fails like AWS. Pass arguments with BENCH_ARGS, e.g. make bench BENCH_ARGS="--agents 500".
bench:
	tools/bench.sh $(BENCH_ARGS)

# The fleet simulation (docs/benchmarks.md): the controller against an in-memory AWS with AWS's
# buckets, quotas and latencies on a virtual clock; 1,000 and 5,000 agents, an image change and
# a 100,000-agent stress; writes docs/plots/*.svg. E.g. make sim SIM_ARGS="--sizes 1000 --stress 0".
sim:
	tools/sim.sh $(SIM_ARGS)

# The checks of deploy/ alone (also part of `make test`): cfn-lint, checkov, parliament,
# promtool, and the template against the development stack on moto (docs/deploy.md).
deploy-check:
	tools/deploy_check.sh
