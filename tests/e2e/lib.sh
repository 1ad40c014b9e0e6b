# Shared helpers for end-to-end scripts (sourced, not run).
RV=${RV:-./retrovisor}
E2E_TMP=${E2E_TMP:-build/e2e}
mkdir -p "$E2E_TMP"

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }

# expect_line FILE PATTERN NAME: a line of FILE matches the extended regex PATTERN
expect_line() {
    if grep -Eq -- "$2" "$1"; then pass "$3"; else fail "$3: no line matching '$2' in $1"; fi
}
