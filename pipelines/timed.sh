#!/bin/sh
# timed.sh LOG TARGET -c LINE: the shell of make reproduce's stages (reproduce.mk sets it as
# SHELL for the targets under RESULTS). Runs LINE with bash -e -o pipefail (a failure anywhere in
# a pipe fails the stage) and appends "TARGET<TAB>seconds<TAB>status" to LOG, so every stage's
# time is on record; exits with LINE's status.
log=$1 target=$2
shift 2
t0=$(date +%s.%N)
/bin/bash -e -o pipefail "$@"
rc=$?
mkdir -p "$(dirname "$log")"
printf '%s\t%.3f\t%d\n' "$target" "$(echo "$(date +%s.%N) - $t0" | bc)" "$rc" >> "$log"
exit $rc
