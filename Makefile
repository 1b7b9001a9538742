# Lethe: two commands do everything on a fresh Debian machine.
#   make demo   set up, build, and run the main job on Fashion-MNIST
#   make test   set up and run the whole test suite (what CI runs)

SWIFT_RELEASE := -c release
LETHE := .build/release/lethe
DEMO_SPEC ?= configs/mae-ours.yaml

.PHONY: setup build demo test lint format sanitize fuzz bench schemas validate clean

setup:
	@scripts/setup.sh

build: setup
	swift build $(SWIFT_RELEASE) --product lethe

demo: build
	$(LETHE) validate configs/*.yaml
	$(LETHE) run $(DEMO_SPEC)

# The Slurm executor's tests run against a one-node Slurm cluster on this machine when the script can
# start one (root, slurm-wlm + munge); otherwise they say so and the rest of the suite runs.
test: setup
	-@scripts/slurm-test-cluster.sh start
	swift test

# Formatting (.swift-format: 120 columns, one declaration per line, no semicolons); CI runs `lint`.
lint:
	swift format lint --recursive --strict Sources Tests Package.swift

format:
	swift format format --in-place --recursive Sources Tests Package.swift

# The readers of untrusted bytes and the C kernels under AddressSanitizer (Swift and C) and
# UndefinedBehaviorSanitizer (C; a trap on undefined behaviour), in their own build folder.
SANITIZE := --scratch-path .build-sanitize -Xswiftc -sanitize=address -Xcc -fsanitize=address,undefined -Xcc -fsanitize-trap=undefined
SANITIZE_TESTS := LetheFilesTests|LetheSpecTests|LetheDataTests|LetheFuzzTests|SafetensorsTests|ConvolutionTests|GradientTests|ScalarTests
sanitize: setup
	swift build $(SANITIZE) --build-tests
	ASAN_OPTIONS=detect_leaks=0 swift test $(SANITIZE) --skip-build --filter '$(SANITIZE_TESTS)'

# libFuzzer on every reader, FUZZ_SECONDS each (default 60); new coverage is merged into Fuzz/corpus/.
fuzz: setup
	scripts/fuzz.sh

# Op and full unlearning-step timings at 1 and 2 threads, beside PyTorch doing the same work.
bench: build
	bench/torch/setup.sh
	$(LETHE) bench --threads 1
	$(LETHE) bench --threads 2

validate: build
	$(LETHE) validate configs/*.yaml

# Regenerate the schemas compiled into the binary from schemas/*.json.
schemas:
	scripts/embed-schemas.sh

clean:
	rm -rf .build .build-sanitize .build-fuzz
