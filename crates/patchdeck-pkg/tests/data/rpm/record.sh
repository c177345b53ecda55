#!/bin/sh
# How the recorded dnf/zypper/rpm outputs under tests/data/{dnf,zypper,rpm} were made
# (Debian 12: dnf 4.14.0, rpm 4.18.0, zypper 1.14.42). Run as root; touches only $W.
# Not run by the tests. Samples NOT recorded here (no such tool on this machine) are marked
# as written by hand where they are used: yum-check-update.txt, the yum updateinfo info
# text and the wrapped-table sample in src/dnf.rs.
set -eu
W=$(mktemp -d); R=$W/root; D=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p $W/home $R; echo '%_dbpath /var/lib/rpm' > $W/home/.rpmmacros; export HOME=$W/home
# Specs: the ones in sandbox.rs (t.spec: sub-package %{pname} of source %{srcname}; s.spec: same name).
# a.spec = s.spec without "BuildArch: noarch" (for libmulti x86_64 + i686).
b() { rpmbuild -bb --quiet --nodeps --define "_topdir $W/top" --define "_rpmdir $W/repo" "$@"; }
for v in 1.0 1.1; do b --define "srcname hello-src" --define "pname hello" --define "pver $v" $W/t.spec; done
for v in 1.0 1.2 1.3; do b --define "pname other" --define "pver $v" --define "pepoch 1" $W/s.spec; done
for t in x86_64 i686; do for v in 2.0 2.1; do b --target $t --define "pname libmulti" --define "pver $v" $W/a.spec; done; done
b --define "pname a-package-with-a-really-quite-extraordinarily-long-name" --define "pver 2.0.1" $W/s.spec
# updateinfo.xml: TEST-SA-1 (security, Important, CVE-2026-0001) other-1:1.2-1;
# TEST-BA-2 (bugfix, bugzilla 7) hello-1.1-1; TEST-SA-3 (security, Critical, CVE-2026-0003/0004)
# libmulti-2.1-1 x86_64+i686; TEST-SA-0 (security, Low) other-1:0.9-1 (already superseded).
createrepo_c -q $W/repo && modifyrepo_c --mdtype=updateinfo $W/updateinfo.xml $W/repo/repodata
printf '[main]\ngpgcheck=0\nreposdir=/dev/null\ninstall_weak_deps=0\nmetadata_expire=0\n[local]\nname=local test repo\nbaseurl=file://%s/repo\n' $W > $W/dnf.conf
DNF="dnf --config=$W/dnf.conf --installroot=$R --releasever=1 --noplugins --color=never"
$DNF -y -q install hello-1.0-1 other-1:1.0-1 libmulti-2.0-1.x86_64 libmulti-2.0-1.i686
rpm --root=$R -qa --qf '%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{INSTALLTIME}\t%{LONGSIZE}\t@\n' > $D/rpm/qa-multiarch-epoch.txt
$DNF -C -q repoquery --upgrades --latest-limit=1 --qf '%{name}\t%{epoch}\t%{version}\t%{release}\t%{arch}\t%{repoid}' > $D/dnf/repoquery-upgrades.txt
$DNF -C -q repoquery --installed --qf '%{name}\t%{arch}\t%{from_repo}' > $D/dnf/repoquery-installed-from-repo.txt
$DNF -C updateinfo list --available > $D/dnf/updateinfo-list.txt 2>/dev/null
$DNF -C updateinfo info --available > $D/dnf/updateinfo-info.txt 2>/dev/null
$DNF -C check-update > $D/dnf/check-update.txt 2>/dev/null || true        # exit 100
$DNF -C --assumeno upgrade > $D/dnf/assumeno-upgrade.txt 2>&1 || true     # exit 1
$DNF -C --assumeno upgrade --security > $D/dnf/assumeno-upgrade-security.txt 2>&1 || true
# The other dnf samples come from a root with only hello/other (repo without other-1.3/libmulti):
#   --assumeno downgrade hello-1.0-1 other-1:1.0-1 / install hello-1.0-1 / reinstall hello / remove other /
#   upgrade (nothing to do) / install hello-9.9-1 / downgrade hello-0.5-1 / install <long name> [hello-1.1];
#   locked-exit-on-lock.txt: stderr of `upgrade` with --setopt=exit_on_lock=True while
#   $R/var/lib/dnf/rpmdb_lock.pid held the pid of a running `sleep`.
# zypper, same repository, own root:
Z="zypper --root $W/zroot --non-interactive"
$Z -q addrepo -G file://$W/repo testrepo; $Z -q refresh; $Z -q install hello=1.0-1 other=1:1.0-1 libmulti.x86_64=2.0-1
Z="$Z --no-refresh"
$Z --xmlout list-updates > $D/zypper/list-updates.xml
$Z --xmlout list-patches > $D/zypper/list-patches.xml
$Z info -t patch TEST-SA-1 TEST-SA-3 TEST-BA-2 > $D/zypper/info-patch.txt
$Z --xmlout update --dry-run > $D/zypper/update-dry-run.xml
$Z --xmlout patch --category security --dry-run > $D/zypper/patch-security-dry-run.xml
# install-oldpackage-dry-run.xml, remove-dry-run.xml, update-nothing-to-do.xml, install-not-found.xml
# (install hello-9.9-1), install-no-provider.xml (install nothere-1.0-1) and locked.xml
# (ZYPP_LOCK_TIMEOUT=0 while $root/run/zypp.pid held a live pid) come from the hello/other-only root.
echo "recorded; sandbox left in $W"
