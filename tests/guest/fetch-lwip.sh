#!/bin/sh
# Fetches Debian's lwip source package and unpacks it (with Debian's patches) into DEST.
# Only this machine's own apt sources are used, turned into a private deb-src list in a
# temporary folder: the machine's apt configuration, lists and caches are never touched, and
# no mirror is named here. apt checks the files against the signed Sources index.
#
#   fetch-lwip.sh DEST
set -eu

dest=${1:?usage: fetch-lwip.sh DEST}
tmp=$dest.fetch
prog="guest: lwIP"

fail() {
	echo "$prog: $*" >&2
	grep -E '^(E|W|Err):' "$tmp/log" 2>/dev/null | tail -n 5 | sed "s/^/$prog:   /" >&2 || true
	echo "$prog: the test guest is built from Debian's lwip source package (apt-get source" >&2
	echo "$prog: lwip through this machine's apt sources); it could not be fetched." >&2
	echo "$prog: log: $tmp/log" >&2
	exit 1
}

command -v apt-get >/dev/null || { echo "$prog: apt-get not found" >&2; exit 1; }
command -v dpkg-source >/dev/null ||
	{ echo "$prog: dpkg-source not found: install dpkg-dev" >&2; exit 1; }
rm -rf "$tmp"
mkdir -p "$tmp/parts" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/dl"

n=0
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	sed -e 's/^Types:.*/Types: deb-src/' "$f" >"$tmp/parts/$(basename "$f")"
	n=$((n + 1))
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] || continue
	out=$tmp/parts/$(basename "$f" .list)-src.list
	sed -n -e 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >"$out"
	if [ -s "$out" ]; then n=$((n + 1)); fi
done
[ "$n" -gt 0 ] || fail "no apt sources found in /etc/apt"

apt() {
	apt-get -q -o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts="$tmp/parts" \
		-o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" \
		-o APT::Sandbox::User=root "$@"
}

echo "$prog: fetching Debian's lwip source package (private deb-src list in $tmp)"
apt update >"$tmp/log" 2>&1 || fail "apt-get update of the deb-src lists failed"
ls "$tmp"/lists/*Sources* >/dev/null 2>&1 ||
	fail "apt-get update fetched no deb-src index (no network, or no mirror reachable?)"
(cd "$tmp/dl" && apt source --download-only lwip) >>"$tmp/log" 2>&1 ||
	fail "apt-get source --download-only lwip failed"
set -- "$tmp"/dl/lwip_*.dsc
dsc=$1
[ -f "$dsc" ] || fail "no lwip .dsc was downloaded"
# Checksums and signature were checked by apt against the signed Release/Sources files.
dpkg-source --no-check -x "$dsc" "$tmp/src" >>"$tmp/log" 2>&1 || fail "dpkg-source -x failed"
[ -f "$tmp/src/src/core/tcp.c" ] || fail "unpacked source has no src/core/tcp.c"
basename "$dsc" .dsc >"$tmp/src/.fetched"
rm -rf "$dest"
mv "$tmp/src" "$dest"
rm -rf "$tmp"
echo "$prog: $(cat "$dest/.fetched") unpacked in $dest"
