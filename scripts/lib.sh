# Sourced by scripts and benchmarks, from the repository root.

# Where cargo puts what it builds: $CARGO_TARGET_DIR, or the workspace's
# target/ (never a path outside the checkout that nobody asked for).
target_dir() {
    cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
