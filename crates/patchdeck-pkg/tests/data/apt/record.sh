#!/bin/sh
# Re-records the apt/dpkg fixtures in this directory from the REAL tools
# (apt 2.6, dpkg 1.21 on Debian 12) run against a throw-away root:
#   sh record.sh            (needs dpkg-dev and apt-utils; changes nothing outside a temp dir)
# The sandbox has two repositories (stable with label "Local", stable-security
# with label "Local-Security"), i386 as a foreign architecture, a
# Multi-Arch: same library installed for amd64 and i386, a binNMU-style package
# with "Source: name (version)", an epoch, a held package, an update that needs
# a new package (kept back by `upgrade`, not by `dist-upgrade`) and a removed package
# whose configuration files remain.
set -eu
OUT=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d); R=$W/root
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/main" "$W/sec" "$W/build"

# mkdeb NAME VERSION ARCH REPO [EXTRA-CONTROL-LINES]
mkdeb() {
    d=$(mktemp -d "$W/build/pkg.XXXX")
    mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$1"
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: t <t@t>\nInstalled-Size: 12\nDescription: test package\n%s' \
        "$1" "$2" "$3" "${5:-}" >"$d/DEBIAN/control"
    echo "$1" >"$d/usr/share/doc/$1/README"
    if [ "$1" = gone ]; then
        mkdir -p "$d/etc"; echo "setting=1" >"$d/etc/gone.conf"; echo /etc/gone.conf >"$d/DEBIAN/conffiles"
    fi
    dpkg-deb --root-owner-group --build "$d" "$4/$1_$2_$3.deb" >/dev/null
}
mkrepo() {
    (cd "$1" && apt-ftparchive packages . >Packages &&
        apt-ftparchive -o APT::FTPArchive::Release::Origin=Local -o APT::FTPArchive::Release::Suite="$2" \
            -o APT::FTPArchive::Release::Codename="$3" -o APT::FTPArchive::Release::Version=12 \
            -o APT::FTPArchive::Release::Label="$4" release . >"$W/Release.tmp" && mv "$W/Release.tmp" Release)
}

mkdeb hello 1.0-1 all "$W/main" 'Source: hello-src
'
mkdeb hello 1.1-1 all "$W/main" 'Source: hello-src
'
mkdeb other 1.0-1 all "$W/main"
mkdeb other 1.2-1 all "$W/sec"
mkdeb epochy 1:2.0-1 all "$W/main"
mkdeb epochy 1:2.1-1 all "$W/main"
mkdeb binnmu 1.2-3+b1 amd64 "$W/main" 'Source: foo (1.2-3)
'
mkdeb newpkg 1.0-1 all "$W/main"
mkdeb grower 1.0-1 all "$W/main"
mkdeb grower 2.0-1 all "$W/main" 'Depends: newpkg
'
mkdeb keepme 1.0-1 all "$W/main"
mkdeb keepme 1.1-1 all "$W/main"
mkdeb gone 1.0-1 all "$W/main"
for arch in amd64 i386; do
    mkdeb libc6 2.36-9 "$arch" "$W/main" 'Multi-Arch: same
Source: glibc
'
    mkdeb libc6 2.36-9+deb12u4 "$arch" "$W/main" 'Multi-Arch: same
Source: glibc
'
    mkdeb libc6 2.36-9+deb12u4 "$arch" "$W/sec" 'Multi-Arch: same
Source: glibc
'
done
mkrepo "$W/main" stable bookworm Local
mkrepo "$W/sec" stable-security bookworm-security Local-Security

mkdir -p "$R/etc/apt/apt.conf.d" "$R/etc/apt/preferences.d" "$R/var/lib/dpkg" "$R/var/lib/apt/lists/partial" \
    "$R/var/cache/apt/archives/partial" "$R/var/log/apt"
touch "$R/var/lib/dpkg/status"
printf 'deb [trusted=yes] file:%s ./\n' "$W/main" "$W/sec" >"$R/etc/apt/sources.list"
cat >"$W/apt.conf" <<EOF
Dir "$R/";
Dir::State::status "$R/var/lib/dpkg/status";
DPkg::Options:: "--root=$R";
APT::Sandbox::User "root";
APT::Architecture "amd64";
APT::Architectures { "amd64"; "i386"; };
EOF
export APT_CONFIG="$W/apt.conf" LC_ALL=C
dpkg --root="$R" --add-architecture i386
apt-get -qq update
apt-get -qq -y install hello=1.0-1 other=1.0-1 epochy=1:2.0-1 binnmu keepme=1.0-1 gone grower=1.0-1 \
    libc6:amd64=2.36-9 libc6:i386=2.36-9 >/dev/null
apt-mark hold keepme >/dev/null
apt-get -qq -y remove gone >/dev/null

# The paths of the throw-away root are replaced by /SANDBOX in the recordings.
rec() { sed "s|$W|/SANDBOX|g" >"$OUT/$1"; }
dpkg-query --admindir="$R/var/lib/dpkg" -W \
    -f='${Package}\t${Architecture}\t${Version}\t${Source}\t${Status}\t${Installed-Size}\n' | rec dpkg-query.txt
apt-get -s -o Debug::NoLocking=1 dist-upgrade | rec sim-dist-upgrade.txt
apt-get -s -o Debug::NoLocking=1 upgrade | rec sim-upgrade.txt
apt-cache policy | rec policy.txt
apt-cache policy hello other epochy libc6:amd64 libc6:i386 | rec policy-pkgs.txt
apt-get -s -o Debug::NoLocking=1 --allow-downgrades install -- epochy=1:2.0-1 hello=1.0-1 | rec sim-downgrade-noop.txt
apt-get -s -o Debug::NoLocking=1 remove -- other libc6 | rec sim-remove.txt
apt-get -s -o Debug::NoLocking=1 install -- hello=9.9 2>&1 | rec sim-version-missing.txt || true
apt-get -s -o Debug::NoLocking=1 install --only-upgrade -- gone newpkg 2>&1 | rec sim-only-upgrade-missing.txt || true
apt-get -s -o Debug::NoLocking=1 install -- newpkg | rec sim-install-new.txt
apt-get -qq -y dist-upgrade >/dev/null
apt-get -s -o Debug::NoLocking=1 --allow-downgrades install -- epochy=1:2.0-1 libc6=2.36-9 | rec sim-downgrade.txt
# Somebody else holds dpkg's frontend lock (an fcntl lock, like apt and dpkg take it).
/usr/bin/python3 -c '
import fcntl, subprocess, sys
with open(sys.argv[1], "w") as f:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    subprocess.run(["apt-get", "-y", "remove", "--", "other"])
' "$R/var/lib/dpkg/lock-frontend" 2>&1 | sed "s/held by process [0-9]*/held by process 4242/" | rec locked.txt
