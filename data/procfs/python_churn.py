# Allocate ~2 GiB in mixed sizes, free a random half, allocate again, then exit.
import random
random.seed(1)
live = []
total = 0
while total < 2 << 30:
    n = random.choice([4096, 16384, 65536, 1 << 20, 4 << 20])
    b = bytearray(n)          # touched (zeroed) memory: faulted in
    b[::4096] = b"\1" * len(b[::4096])
    live.append(b); total += n
random.shuffle(live)
del live[: len(live) // 2]
extra = [bytearray(random.choice([4096, 65536])) for _ in range(20000)]
print("done", total >> 20, "MiB")
