// The cost of only reading a tick's files: `pread` each file given on the command line once per
// tick, or all of them in one io_uring submission, once a second (as the agent). Used by floor.sh.
//   floor MODE TICKS FILE...     MODE 0 = pread, 1 = io_uring
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static int ring;
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;

static void setup(unsigned entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  ring = syscall(__NR_io_uring_setup, entries, &p);
  if (ring < 0) { perror("io_uring_setup"); exit(1); }
  size_t sl = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cl = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  char *sq = mmap(0, sl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
  char *cq = mmap(0, cl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
  sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) { perror("mmap"); exit(1); }
  sq_tail = (unsigned *)(sq + p.sq_off.tail); sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  sq_array = (unsigned *)(sq + p.sq_off.array);
  cq_head = (unsigned *)(cq + p.cq_off.head); cq_tail = (unsigned *)(cq + p.cq_off.tail);
  cq_mask = (unsigned *)(cq + p.cq_off.ring_mask); cqes = (void *)(cq + p.cq_off.cqes);
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: floor MODE TICKS FILE...\n"); return 2; }
  int mode = atoi(argv[1]), ticks = atoi(argv[2]), n = argc - 3;
  if (n > 1024) { fprintf(stderr, "at most 1024 files\n"); return 2; }
  static int fds[1024];
  static char bufs[1024][4096];
  for (int i = 0; i < n; i++) {
    fds[i] = open(argv[3 + i], O_RDONLY);
    if (fds[i] < 0) { perror(argv[3 + i]); return 1; }
  }
  if (mode == 1) setup(1024);
  long bytes = 0;
  for (int t = 0; t < ticks; t++) {
    if (mode == 0) {
      for (int i = 0; i < n; i++) bytes += pread(fds[i], bufs[i], sizeof bufs[i], 0);
    } else {
      unsigned tail = *sq_tail;
      for (int i = 0; i < n; i++, tail++) {
        unsigned idx = tail & *sq_mask;
        struct io_uring_sqe *s = &sqes[idx];
        memset(s, 0, sizeof *s);
        s->opcode = IORING_OP_READ; s->fd = fds[i]; s->addr = (unsigned long)bufs[i];
        s->len = sizeof bufs[i]; s->off = 0; s->user_data = i;
        sq_array[idx] = idx;
      }
      atomic_store_explicit((_Atomic unsigned *)sq_tail, tail, memory_order_release);
      if (syscall(__NR_io_uring_enter, ring, n, n, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        perror("io_uring_enter"); return 1;
      }
      unsigned h = *cq_head, end = atomic_load_explicit((_Atomic unsigned *)cq_tail, memory_order_acquire);
      for (; h != end; h++) { int r = cqes[h & *cq_mask].res; if (r > 0) bytes += r; }
      atomic_store_explicit((_Atomic unsigned *)cq_head, h, memory_order_release);
    }
    usleep(1000000);
  }
  printf("mode %d: %d files, %ld bytes per tick\n", mode, n, bytes / ticks);
  return 0;
}
