# Hard links, in the writable dirs (/work, /tmp, /dev/shm), to files outside
# them: the interpreter under /usr, the sandbox's /etc/passwd, the host's
# ld.so.cache bound onto /etc; by path and through /proc/self/fd (linkat
# AT_SYMLINK_FOLLOW). ESCAPED if a link appears and opens for writing: a
# writable name for a file outside the writable dirs. Inside, each writable
# dir is a mount of its own (EXDEV). Host control: base = a host temp dir
# whose usr/ and etc/ hold copies of these files, on the same filesystem as
# its work/ and tmp/.
import errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
base = P.get("base", "")
srcs = [os.path.realpath(base + p) for p in ("/usr/bin/python3", "/etc/passwd", "/etc/ld.so.cache")]
dirs = [base + d for d in ("/work", "/tmp", "/dev/shm")]
hits, linked, errs = [], [], set()


def attempt(src, via, dst):
    try:
        os.link(via, dst)  # linkat(AT_SYMLINK_FOLLOW)
    except OSError as e:
        errs.add(errno.errorcode.get(e.errno, str(e.errno)))
        return
    try:
        os.close(os.open(dst, os.O_WRONLY | os.O_APPEND))  # opened, never written
        hits.append(f"{dst} -> {src}")
    except OSError:
        linked.append(f"{dst} -> {src} (read-only)")
    finally:
        os.unlink(dst)


for i, src in enumerate(srcs):
    for d in dirs:
        attempt(src, src, os.path.join(d, f"hostile-hardlink-{i}"))
        try:
            fd = os.open(src, os.O_RDONLY)
        except OSError as e:
            errs.add(errno.errorcode.get(e.errno, str(e.errno)))
            continue
        attempt(src, f"/proc/self/fd/{fd}", os.path.join(d, f"hostile-hardlink-fd-{i}"))
        os.close(fd)
if hits:
    print(f"ESCAPED writable hard link to a file outside the writable dirs: {hits[0]}")
else:
    print(f"CONTAINED hard links ({', '.join(sorted(errs))}){'; ' + linked[0] if linked else ''}")
