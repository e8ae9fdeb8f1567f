#!/usr/bin/env bash
# Obtain lwIP (the version in UPSTREAM) from Debian's source package `lwip`, verify the orig tarball's
# sha256 (UPSTREAM), unpack it to third_party/lwip/src/ and apply our patches/ in order.
#
#   third_party/lwip/fetch.sh            # as root on Debian: enables deb-src if needed, apt-get source
#   LWIP_SRC=/path/to/lwip fetch.sh      # use an existing lwIP tree (its src/core must exist) instead
#   LWIP_TARBALL=/path/lwip_X.orig.tar.xz fetch.sh   # use a downloaded orig tarball (still verified)
#
# deb-src lines are derived from the machine's own apt sources (those of the running release's
# suite); no host name is written here. They go to /etc/apt/sources.list.d/gostx-deb-src.sources.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$HERE/src"
DL="$HERE/dl"
# shellcheck disable=SC1091
. "$HERE/UPSTREAM"   # VERSION, DEBIAN_PACKAGE, ORIG_TARBALL, SHA256

die() {
    echo "error: lwIP $VERSION: $*" >&2
    echo "       Provide it with LWIP_SRC=/path/to/lwip-$VERSION (an unpacked lwIP tree), or" >&2
    echo "       LWIP_TARBALL=/path/to/$ORIG_TARBALL, or run this as root on Debian with" >&2
    echo "       network access to the Debian archive (apt-get source $DEBIAN_PACKAGE)." >&2
    exit 1
}

apply_patches() {
    local tree="$1" p
    command -v patch >/dev/null || die "the 'patch' command is missing (apt-get install patch)"
    for p in "$HERE"/patches/*.patch; do
        [ -e "$p" ] || continue
        patch -s -p1 -N -d "$tree" <"$p" || die "patch $(basename "$p") does not apply"
    done
}

install_tree() {   # $1: an unpacked lwIP tree; copied to src/ and patched
    local from="$1" tmp
    [ -d "$from/src/core" ] || die "$from is not an lwIP tree (no src/core)"
    tmp="$(mktemp -d "$HERE/.src.XXXXXX")"
    cp -a "$from"/. "$tmp"/
    apply_patches "$tmp"
    rm -rf "$DEST"
    mv "$tmp" "$DEST"
    echo "lwIP $VERSION ready in $DEST"
}

from_tarball() {   # $1: the orig tarball
    local tarball="$1" sum top
    sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
    [ "$sum" = "$SHA256" ] || die "$tarball has sha256 $sum, expected $SHA256 (UPSTREAM)"
    rm -rf "$DL/unpack"
    mkdir -p "$DL/unpack"
    tar -xf "$tarball" -C "$DL/unpack"
    top="$(find "$DL/unpack" -mindepth 1 -maxdepth 1 -type d | head -n1)"
    [ -n "$top" ] || die "$tarball is empty"
    install_tree "$top"
    rm -rf "$DL/unpack"
}

# Add deb-src entries mirroring the release's own `deb` entries (deb822 and one-line formats).
enable_deb_src() {
    local codename out tmp
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    [ -n "$codename" ] || die "cannot tell the Debian release (no VERSION_CODENAME in /etc/os-release)"
    out=/etc/apt/sources.list.d/gostx-deb-src.sources
    tmp="$(mktemp)"
    # deb822 stanzas: copy those whose Types has `deb` and whose Suites has the release's own suite
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] && [ "$f" != "$out" ] || continue
        awk -v suite="$codename" '
            function flush() {
                if (is_deb && has_suite && uris != "") {
                    print "Types: deb-src"; print "URIs: " uris; print "Suites: " suite
                    print "Components: " comps; if (signed != "") print "Signed-By: " signed; print ""
                }
                is_deb = 0; has_suite = 0; uris = ""; comps = ""; signed = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
            /^URIs:/ { uris = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
            /^Components:/ { sub(/^Components:[ \t]*/, ""); comps = $0 }
            /^Signed-By:/ { signed = $2 }
            END { flush() }
        ' "$f" >>"$tmp"
    done
    # one-line format: "deb [opts] URI SUITE COMPONENTS..."
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        awk -v suite="$codename" '
            $1 == "deb" {
                i = 2; opts = ""
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts $i " "; i++ } opts = opts $i; i++ }
                uri = $i; s = $(i + 1); comps = ""
                for (j = i + 2; j <= NF; j++) comps = comps " " $j
                if (s == suite) {
                    signed = ""
                    if (match(opts, /signed-by=[^] ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
                    print "Types: deb-src"; print "URIs: " uri; print "Suites: " s
                    sub(/^ /, "", comps); print "Components: " comps
                    if (signed != "") print "Signed-By: " signed; print ""
                }
            }
        ' "$f" >>"$tmp"
    done
    if [ ! -s "$tmp" ]; then
        rm -f "$tmp"
        die "no apt source for suite '$codename' to derive a deb-src entry from"
    fi
    install -m 0644 "$tmp" "$out"
    rm -f "$tmp"
    echo "== enabled deb-src entries in $out"
}

from_apt() {
    command -v apt-get >/dev/null || die "apt-get is not available"
    [ "$(id -u)" = 0 ] || die "fetching with apt needs root"
    if ! apt-cache showsrc "$DEBIAN_PACKAGE" 2>/dev/null | grep -q "^Version: $VERSION"; then
        apt-cache showsrc "$DEBIAN_PACKAGE" >/dev/null 2>&1 || enable_deb_src
        apt-get update -qq || die "apt-get update failed"
    fi
    apt-cache showsrc "$DEBIAN_PACKAGE" 2>/dev/null | grep -q "^Version: $VERSION" \
        || die "Debian has no source package $DEBIAN_PACKAGE $VERSION here (apt-cache showsrc $DEBIAN_PACKAGE)"
    command -v dpkg-source >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null \
        || die "cannot install dpkg-dev (for apt-get source)"
    rm -rf "$DL"
    mkdir -p "$DL"
    id _apt >/dev/null 2>&1 && chown _apt "$DL"   # apt downloads as _apt where it can
    (cd "$DL" && apt-get source --download-only -qq "$DEBIAN_PACKAGE=$(apt-cache showsrc "$DEBIAN_PACKAGE" \
        | sed -n "s/^Version: \($VERSION.*\)/\1/p" | head -n1)") >/dev/null \
        || die "apt-get source $DEBIAN_PACKAGE failed"
    [ -f "$DL/$ORIG_TARBALL" ] || die "apt-get source gave no $ORIG_TARBALL"
    from_tarball "$DL/$ORIG_TARBALL"
}

if [ -n "${LWIP_SRC:-}" ]; then
    install_tree "$LWIP_SRC"
elif [ -n "${LWIP_TARBALL:-}" ]; then
    from_tarball "$LWIP_TARBALL"
else
    from_apt
fi
