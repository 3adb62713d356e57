# Starts threads until one fails, up to 512 (each waits on an event, then all
# exit). The sandbox's process limit counts threads too (64 by default); the
# stacks are small so that it, not the memory limit, is what stops them.
import threading
BOUND = 512
threading.stack_size(128 * 1024)
go = threading.Event()
threads, err = [], None
for _ in range(BOUND):
    t = threading.Thread(target=go.wait)
    try:
        t.start()
    except (RuntimeError, MemoryError, OSError) as e:
        err = e
        break
    threads.append(t)
go.set()
for t in threads:
    t.join()
print(f"ESCAPED could start {BOUND} threads" if len(threads) == BOUND
      else f"CONTAINED threads stopped at {len(threads)} ({err})")
