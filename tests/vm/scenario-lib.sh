# shellcheck shell=sh
# Shell helpers for the VM scenarios, installed in the guest as
# /usr/lib/luod-vm/scenario-lib.sh: `. /usr/lib/luod-vm/scenario-lib.sh`.
# A scenario sets $boot (its $1) first. luod logs to $log.
log=${log:-/tmp/luod.log}

ok() { echo "ok - $*"; }
nok() { echo "not ok - $*"; }
# expect DESCRIPTION ACTUAL WANTED
expect() {
	if [ "$2" = "$3" ]; then ok "$1 ($2)"; else nok "$1: got '$2', want '$3'"; fi
}
# status KEY: one field of `luoctl status --json`
status() { luoctl status --json | json-get "$1"; }
# sessions_of ID: how many sessions luod holds for client ID
sessions_of() { luoctl list --json | tr '{' '\n' | grep -c "\"client\":\"$1\""; }
# kill_all NAME...: SIGKILL every process of each NAME and wait for it
kill_all() {
	for name in "$@"; do
		for pid in $(pidof "$name"); do
			kill -9 "$pid"
			while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
		done
	done
}

# wait_for KEY VALUE [TRIES]: poll status until KEY is VALUE (0.2 s a try,
# $WAIT_TRIES or 300 tries by default), then check it.
wait_for() {
	i=0
	while [ "$(status "$1")" != "$2" ] && [ $i -lt "${3:-${WAIT_TRIES:-300}}" ]; do
		sleep 0.2
		i=$((i + 1))
	done
	expect "$1" "$(status "$1")" "$2"
}

# start_luod [LUOD-OPTION]...: start luod (with $LUOD_ENV, "NAME=VALUE ...",
# in its environment) and wait until it answers; on failure print its log
# and end the scenario.
start_luod() {
	# shellcheck disable=SC2086 # LUOD_ENV is a list of assignments
	env ${LUOD_ENV:-} luod --verbose "$@" >>"$log" 2>&1 &
	i=0
	until luoctl status >/dev/null 2>&1 || [ $i -ge 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if luoctl status >/dev/null 2>&1; then ok "luod is serving${why:+ ($why)}"; else
		nok "luod did not start${why:+ ($why)}"
		sed 's/^/# /' "$log"
		exit 1
	fi
}

# load_next: load /boot/bzImage for the next boot (luod.boot=$boot+1).
load_next() {
	cmdline=$(sed "s/luod\.boot=[0-9]*/luod.boot=$((boot + 1))/" /proc/cmdline)
	if luoctl load /boot/bzImage --initrd /boot/initrd.img --cmdline "$cmdline" >/dev/null; then
		ok "kernel loaded"
	else
		nok "luoctl load failed"
	fi
}

# kexec_now [LUOCTL-KEXEC-OPTION]...: run the update; this boot ends in it.
# luoctl exits on luod's "rebooting" and the kexec follows at once, so
# still being here a minute later is a failure too.
kexec_now() {
	# luoctl's status, not sed's: the pipe streams what it says before the reboot.
	{
		luoctl kexec "$@"
		echo $? >/tmp/kexec-now.rc
	} 2>&1 | sed 's/^/# luoctl: /'
	if [ "$(cat /tmp/kexec-now.rc)" = 0 ]; then
		sleep 60
		nok "still up a minute after luoctl kexec said rebooting"
	else
		nok "luoctl kexec failed: the update was aborted"
	fi
	sed 's/^/# /' "$log"
	exit 1
}
