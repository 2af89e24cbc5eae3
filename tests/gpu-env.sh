# gpu-env.sh: sourced (`. tests/gpu-env.sh`, from the repository root) before building dlmkit on
# a machine that may lack the four Debian libraries the build links (msgpack-c, PCRE2, jansson,
# OpenBLAS), like the lent GPU machine: no apt, no network. tests/gpu-check.sh sources it; so
# can any other device command that builds (`. tests/gpu-env.sh && make DEPS=0 CUDA=1 ...`).
#
# When a probe program that includes the four headers and links the four libraries fails to build
# or run, and .gpudeps/ holds their .debs (tests/gpu-prep.sh downloads them on a Debian 12
# machine; the device call carries .gpudeps), it unpacks them into $GPU_DEPS_ROOT [/tmp/gpudeps],
# never into /, with dpkg-deb -x (or ar + tar), and prepends to
#   CPATH         the headers (cblas.h from Debian's openblas-pthread folder, where the
#                 alternatives symlink would point);
#   LIBRARY_PATH  $GPU_DEPS_ROOT/lib: the link names of the Makefile's -l flags, and
#   LD_LIBRARY_PATH  the same folder: the run-time names (sonames) this machine has none of
#                 (ldconfig -p), so that no library of the machine's own is shadowed.
# make from .gpudeps goes on PATH when the machine has none. Then the probe runs again.
# Sets GPU_ENV_OK=1 when the probe builds and runs, else 0 (the reason on stderr), and
# GPU_ENV_FROM to where the libraries come from (the machine's own, or .gpudeps); prints it.

# gpu_env_probe DIR: compiles, links and runs a program using the four libraries in DIR (its
# output and errors in DIR/log); status 0 when it ran
gpu_env_probe() {
    cat > "$1/probe.c" <<'EOF'
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cblas.h>
#include <jansson.h>
#include <msgpack.h>
#include <pcre2.h>
#include <stdio.h>
#ifndef OPENBLAS_VERSION
#define OPENBLAS_VERSION " OpenBLAS (version unknown)"
#endif

int main(void)
{
    float x[2] = {1, 2};
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "a+", PCRE2_ZERO_TERMINATED, 0, &code, &offset,
                                   NULL);
    json_t *j = json_integer(5);
    int ok = re && j && cblas_sdot(2, x, 1, x, 1) == (float) json_integer_value(j);
    printf("msgpack-c %s, jansson %s,%s%s\n", msgpack_version(), JANSSON_VERSION, OPENBLAS_VERSION,
           ok ? "" : " (wrong results)");
    pcre2_code_free(re);
    json_decref(j);
    return !ok;
}
EOF
    ${CC:-cc} -o "$1/probe" "$1/probe.c" -lmsgpackc -lpcre2-8 -ljansson -lopenblas -ldl \
        > "$1/log" 2>&1 &&
        "$1/probe" >> "$1/log" 2>&1
}

# gpu_env_unpack DEBDIR ROOT: every DEBDIR/*.deb's files under ROOT/root, and ROOT/lib, ROOT/bin
# as described above; exports the search paths
gpu_env_unpack() {
    rm -rf "$2" && mkdir -p "$2/root" "$2/lib" "$2/bin" || return 1
    for deb in "$1"/*.deb; do
        if command -v dpkg-deb > /dev/null; then
            dpkg-deb -x "$deb" "$2/root" || return 1
        else
            deb_abs=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
            rm -rf "$2/ar" && mkdir "$2/ar" &&
                (cd "$2/ar" && ar x "$deb_abs" && tar -xf data.tar.* -C "$2/root") || return 1
        fi
    done
    rm -rf "$2/ar"
    multiarch=$2/root/usr/lib/x86_64-linux-gnu
    for name in libmsgpackc.so libpcre2-8.so libjansson.so openblas-pthread/libopenblas.so; do
        if [ ! -e "$multiarch/$name" ]; then
            echo "gpu-env: $1 has no $name (run tests/gpu-prep.sh again)" >&2
            return 1
        fi
        ln -sf "$(readlink -f "$multiarch/$name")" "$2/lib/$(basename "$name")"
    done
    known=$( (ldconfig -p || /sbin/ldconfig -p) 2> /dev/null)
    for lib in "$multiarch"/lib*.so.* "$multiarch"/openblas-pthread/libopenblas.so.0; do
        name=$(basename "$lib")
        case ${name##*.so.} in *.*) continue ;; esac # libfoo.so.1.2.3: a file, not a soname
        if printf '%s\n' "$known" | grep -q "^[[:space:]]*$name "; then continue; fi
        ln -sf "$(readlink -f "$lib")" "$2/lib/$name"
    done
    if ! command -v make > /dev/null && [ -x "$2/root/usr/bin/make" ]; then
        ln -sf "$2/root/usr/bin/make" "$2/bin/make"
        PATH=$2/bin:$PATH
    fi
    CPATH=$2/root/usr/include:$2/root/usr/include/x86_64-linux-gnu/openblas-pthread${CPATH:+:$CPATH}
    LIBRARY_PATH=$2/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
    LD_LIBRARY_PATH=$2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export PATH CPATH LIBRARY_PATH LD_LIBRARY_PATH
}

# gpu_env_why DIR: the probe's first errors (or the end of its log)
gpu_env_why() {
    grep -E 'error|fatal|cannot' "$1/log" | head -n 5 | grep . >&2 || tail -n 5 "$1/log" >&2
}

gpu_env() {
    GPU_ENV_OK=0
    GPU_ENV_FROM=
    probe_dir=$(mktemp -d) || return 1
    if gpu_env_probe "$probe_dir" && command -v make > /dev/null; then
        GPU_ENV_OK=1 GPU_ENV_FROM="the machine's own: $(tail -n 1 "$probe_dir/log")"
        echo "gpu-env: libraries: $GPU_ENV_FROM"
    elif ! ls .gpudeps/*.deb > /dev/null 2>&1; then
        echo "gpu-env: the machine lacks make or the libraries the build links, and there is no" \
            ".gpudeps/ (tests/gpu-prep.sh makes it; carry it):" >&2
        gpu_env_why "$probe_dir"
    elif ! gpu_env_unpack .gpudeps "${GPU_DEPS_ROOT:-/tmp/gpudeps}"; then
        echo "gpu-env: unpacking .gpudeps into ${GPU_DEPS_ROOT:-/tmp/gpudeps} failed" >&2
    elif ! gpu_env_probe "$probe_dir"; then
        echo "gpu-env: the libraries of .gpudeps do not build or run here:" >&2
        gpu_env_why "$probe_dir"
    else
        GPU_ENV_OK=1
        GPU_ENV_FROM=".gpudeps unpacked in ${GPU_DEPS_ROOT:-/tmp/gpudeps}:"
        GPU_ENV_FROM="$GPU_ENV_FROM $(tail -n 1 "$probe_dir/log")"
        echo "gpu-env: libraries: $GPU_ENV_FROM; make: $(command -v make)"
    fi
    rm -rf "$probe_dir"
    [ "$GPU_ENV_OK" = 1 ]
}

gpu_env
