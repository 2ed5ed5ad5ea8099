# shellcheck shell=bash
# A private apt state for Debian's newer suites, shared by tests/vm/kernel
# and tests/vm/debian-image. The machine's apt lists only its own suite;
# the newer ones go into $aptdir so the system's package lists stay
# untouched. The mirror is the one the machine already uses: never a host
# name of our own. The caller sets $cache and defines die().

aptdir=$cache/apt
apt_opts=(-o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Dir::Etc::sourceparts=$aptdir/none"
	-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
	-o "Dir::State::status=$aptdir/status" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
	# unstable's Release file is often past its Valid-Until on the mirror.
	-o "Acquire::Check-Valid-Until=false")

# The machine's Debian mirror URI, from its deb822 or one-line sources.
mirror_uri() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '/^URIs:/ { u = $2 }
		     /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-security$/ && $i !~ /-updates$/) { print u; exit } }' "$f"
	done
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) !~ /-security$/) print $i; break } }'
}

# apt_refresh: point the private state at unstable and trixie-backports on
# the machine's mirror and update it; fails (quietly) when offline.
apt_refresh() {
	mirror=$(mirror_uri | head -n1)
	[ -n "$mirror" ] || die "found no Debian mirror in /etc/apt/sources.list{,.d}; add one so the test bed can fetch newer Debian packages"
	mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/none"
	# Two test-bed scripts may refresh at once (NoLocking above).
	(
		flock 9
		: >"$aptdir/status"
		{
			echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror unstable main"
			echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie-backports main"
		} >"$aptdir/sources.list"
		apt-get "${apt_opts[@]}" -q update >"$aptdir/update.log" 2>&1
	) 9>"$cache/apt.lock"
}
