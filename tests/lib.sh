# Helpers shared by the shell tests: each check prints "ok" or "FAIL" and is counted.
# Sourcing it makes a scratch folder $W, removed on exit.
W=$(mktemp -d)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-$(dirname "$HERE")/.venv/bin/python}  # the wheel's torch (scripts/setup.sh)
trap 'rm -rf "$W"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# ok NAME CMD...: must exit 0.
ok() {
  local name=$1; shift
  if "$@" >"$W/out" 2>"$W/err"; then pass "$name"; else fail "$name (exit $?)"; tail -3 "$W/err"; fi
}

# bad NAME PATTERN CMD...: must exit non-zero with a last stderr line "amalgam: error: ...PATTERN...".
bad() {
  local name=$1 pattern=$2; shift 2
  "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  local last
  last=$(tail -n 1 "$W/err")
  if [ $rc -ne 0 ] && [[ "$last" == "amalgam: error: "* ]] && [[ "$last" == *"$pattern"* ]]; then
    pass "$name -> $last"
  else
    fail "$name: exit $rc, last stderr line: $last"
  fi
}

# exists NAME FILE...
exists() {
  local name=$1; shift
  for f in "$@"; do [ -s "$f" ] || { fail "$name: $f missing"; return; }; done
  pass "$name"
}

# absent NAME FILE...
absent() {
  local name=$1; shift
  for f in "$@"; do [ ! -e "$f" ] || { fail "$name: $f was written"; return; }; done
  pass "$name"
}

# summary NAME: prints the counts; the exit status says whether every check passed.
summary() {
  echo "$1: $passed passed, $failed failed"
  [ $failed -eq 0 ]
}

# make_fixtures SCRIPT: runs tests/fixtures/SCRIPT to fill $W; the test stops if it fails.
make_fixtures() {
  "$PY" "$HERE/fixtures/$1" "$W" || { echo "FAIL fixtures $1"; exit 1; }
}
