#!/usr/bin/env bash
# Is there a compiler ($1, default clang) that links libFuzzer with ASan and UBSan? Exit 0: yes. Otherwise
# outside CI: a SKIP message and exit 3; in CI (CI=true): an error and exit 1.
cc=${1:-clang}
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
if printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
    "$cc" -fsanitize=fuzzer,address,undefined -x c - -o "$probe/p" >/dev/null 2>&1; then
    exit 0
fi
msg="$cc with libFuzzer not found (Debian: apt-get install clang libclang-rt-14-dev)"
if [ "${CI:-}" = true ]; then
    echo "error: fuzz: $msg" >&2
    exit 1
fi
echo "== fuzz: SKIP: $msg"
exit 3
