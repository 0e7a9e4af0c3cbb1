# The entry points. Each target installs what it needs (moto through pip) and starts what it
# uses; nothing has to be running beforehand.
.PHONY: demo test lint build

# The main job on the local AWS: start moto, bootstrap, apply examples/, print `clawfleet get`.
demo:
	tools/demo.sh

# Every test, against one moto_server started for the run.
test:
	tools/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

build:
	cargo build --workspace --locked
