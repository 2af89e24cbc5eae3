#!/bin/sh
# Benchmark-only Debian packages: the peers we measure against (PyTorch for the models, faiss and
# scikit-learn for MAUVE; bc for the timings). Installed when missing and we are root; otherwise the apt-get line is
# printed and the benchmarks that need them report their peer as skipped. The project itself and
# its tests never need Python.
packages="python3-torch python3-faiss python3-sklearn python3-numpy bc"
missing=$(for p in $packages; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
done)
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "bench: installing benchmark peers:" $missing >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2; } ||
        echo "bench: could not install $missing" >&2
else
    echo "bench: peers missing; run: sudo apt-get install -y" $missing >&2
fi
exit 0
