#!/usr/bin/env python3
"""measure.py CMD...: runs CMD (through bash -c when one argument), prints 'wall_s peak_rss_kib' on
stderr's last line; peak RSS is the largest of the process tree's members (ru_maxrss of children)."""
import os, resource, subprocess, sys, time
cmd = sys.argv[1:]
t = time.monotonic()
p = subprocess.Popen(['bash', '-c', cmd[0]] if len(cmd) == 1 else cmd, stdout=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
wall = time.monotonic() - t
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit('command failed: %s' % ' '.join(cmd))
print('%.3f %d' % (wall, ru.ru_maxrss))
