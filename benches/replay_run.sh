# Sourced by benches/end_to_end.sh and benches/compare.sh: the steps a timed replay takes in
# both, so that both measure the same way.

# fill_memory FILE: fills all but 2 GiB of free memory with clean page cache (FILE, sparse,
# read once), as a recorder that has run a while finds its memory.
fill_memory() {
    local spare
    rm -f "$1"
    spare=$(awk '/^MemFree:/ {printf "%.0f", $2 / 1024 - 2048}' /proc/meminfo)
    [ "$spare" -le 0 ] || { truncate -s "${spare}M" "$1" && cat "$1" > /dev/null; }
}

# Removing a run's files frees their inodes, and ext4 without a journal (this machine's disk:
# /proc/fs/jbd2 names no journal for it) hands out no inode freed in the last 5 minutes (60 s,
# 300 s while its inode table block is dirty) before checking each such inode of the group it
# allocates in, one buffer lookup each (recently_deleted, find_get_block_common). Runs started
# within those minutes after their predecessors were removed paid for it, which is not the
# recorder's cost: 5,000 calls x 10 s took 15.6 CPU s just after the 25,000 recordings of the
# runs before were removed, 10.8-12.0 s when started 5 minutes or more after a removal.
# remove_runs DIR PATH...: removes the paths and notes when in DIR; await_removals DIR: on such
# a filesystem, waits until the last removal noted in DIR is 5 minutes old.
remove_runs() {
    local dir=$1
    shift
    [ $# -gt 0 ] || return 0
    rm -rf "$@"
    date +%s > "$dir/removed-at"
}
await_removals() {
    local dir=$1 dev at left
    [ "$(findmnt -n -o FSTYPE -T "$dir" 2>/dev/null)" = ext4 ] || return 0
    dev=$(basename "$(readlink -f "$(findmnt -n -o SOURCE -T "$dir" | sed 's|\[.*||')")")
    ! compgen -G "/proc/fs/jbd2/$dev-*" > /dev/null || return 0
    at=$(cat "$dir/removed-at" 2>/dev/null || echo 0)
    left=$((at + 300 - $(date +%s)))
    [ "$left" -gt 0 ] || return 0
    echo "waiting $left s: the last runs were removed at $(date -d "@$at" +%T), and on ext4 without a journal ($dev) new files skip inodes freed in the last 5 minutes one by one" >&2
    sleep "$left"
}

# disk_stat DIR: the I/O statistics of the block device DIR's filesystem is on
# (/sys/class/block/DEV/stat: requests completed, field 5 writes, 12 discards, 16 flushes), or
# nothing where it is on none (tmpfs, overlay).
disk_stat() {
    local source dev
    # A btrfs subvolume's source ends in [/path]; /dev/mapper/NAME links to /dev/dm-N.
    source=$(findmnt -n -o SOURCE -T "$1" 2>/dev/null | sed 's|\[.*||')
    [ -e "$source" ] || return 1
    dev=$(basename "$(readlink -f "$source")")
    [ -r "/sys/class/block/$dev/stat" ] && cat "/sys/class/block/$dev/stat"
}

# timed_replay BIN RUN PCAP SIGNING_KEY THREADS [ARGS...]: `BIN replay` of PCAP into RUN/data
# and RUN/archive under /usr/bin/time (RUN/time: wall user sys maxrss), its summary and log in
# RUN/summary and RUN/log; with THREADS=1 each thread's CPU in RUN/threads (benches/threads.py).
# Sets REPLAY_STATUS (the exit status), REPLAY_STEAL (seconds the host took from this
# machine's cores meanwhile, /proc/stat), REPLAY_BUSY (CPU seconds every core of the machine
# spent meanwhile, in user and kernel mode and interrupts, whoever for: with the recorder's own,
# the kernel's threads' work for it, page reclaim and the flushers' writeback, which its own
# CPU time does not count) and REPLAY_DISK ("WRITES FLUSHES DISCARDS": requests
# the disk under RUN completed from the start of the run to its end, whoever asked, or "- - -").
timed_replay() {
    local bin=$1 run=$2 pcap=$3 key=$4 threads=$5 steal0 busy0 disk0 timer child sampler=
    shift 5
    sync
    steal0=$(awk '/^cpu / {print $9}' /proc/stat)
    busy0=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat)
    disk0=$(disk_stat "$run" || true)
    REPLAY_STATUS=0
    CALLVAULT_CONFIG=/dev/null /usr/bin/time -f '%e %U %S %M' -o "$run/time" \
        "$bin" replay --quiet --output "$run/data" --archive "$run/archive" --signing-key "$key" \
        "$@" "$pcap" > "$run/summary" 2> "$run/log" &
    timer=$!
    # The callvault process is the timer's child.
    if [ "$threads" = 1 ]; then
        for _ in $(seq 100); do child=$(pgrep -P "$timer" || true); [ -n "$child" ] && break; sleep 0.01; done
        [ -z "$child" ] || { python3 benches/threads.py "$child" > "$run/threads" & sampler=$!; }
    fi
    wait "$timer" || REPLAY_STATUS=$?
    REPLAY_STEAL=$(awk -v s0="$steal0" -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($9 - s0) / hz}' /proc/stat)
    REPLAY_BUSY=$(awk -v b0="$busy0" -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8 - b0) / hz}' /proc/stat)
    # Everything the run made durable was fsynced before it ended, so what the disk did for it
    # is counted by now (with what anything else on the machine asked for meanwhile).
    REPLAY_DISK=$(echo "$disk0 $(disk_stat "$run" || true)" |
        awk 'NF >= 34 && NF % 2 == 0 {h = NF / 2; printf "%d %d %d", $(h + 5) - $5, $(h + 16) - $16, $(h + 12) - $12; next} {print "- - -"}')
    [ -z "$sampler" ] || wait "$sampler"
}
