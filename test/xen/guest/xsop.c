/*
 * xsop: one xenstore operation, for the Xen suite's test guests. It speaks the wire protocol
 * (xen/include/public/io/xs_wire.h) over the guest's own /dev/xen/xenbus (or a xenstored socket, which
 * is how the host-side tests run it against the simulator), and prints xenstored's own error name
 * (EACCES, ENOENT, ...) where Debian's xenstore-* clients print only "could not write path": the
 * guest-perms scenario compares those names with the simulator's.
 *
 *   xsop read PATH            the value                 xsop ls PATH         the children, one a line
 *   xsop write PATH VALUE     OK                        xsop rm PATH         OK
 *   xsop fill PATH N VALUE    writes PATH/0 .. PATH/N-1, prints how many were written
 *   xsop big PATH SIZE        writes a value of SIZE bytes ('x')
 * A failure prints "ERR <name>" on stdout and exits 1; a usage or transport error exits 2.
 * Device: $XENSTORED_PATH, else /dev/xen/xenbus. Static, no libraries: it runs in a busybox initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { XS_DIRECTORY = 1, XS_READ = 2, XS_WRITE = 11, XS_RM = 13, XS_ERROR = 16 };
#define XS_MAX 4096

struct hdr {
  uint32_t type, req_id, tx_id, len;
};

static int fd = -1;
static uint32_t next_req = 1;

static void die(const char *what) {
  fprintf(stderr, "xsop: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void open_store(void) {
  const char *path = getenv("XENSTORED_PATH");
  if (path == NULL || *path == '\0') path = "/dev/xen/xenbus";
  struct stat st;
  if (stat(path, &st) != 0) die(path);
  if (S_ISSOCK(st.st_mode)) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
      fprintf(stderr, "xsop: socket path too long\n");
      exit(2);
    }
    strcpy(a.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die(path);
  } else {
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) die(path);
  }
}

static void read_full(void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EPIPE;
      die("read");
    }
    p += r;
    n -= (size_t)r;
  }
}

/* One request, its reply (watch events are never asked for). Returns the reply's type; *out gets
 * the payload, NUL-terminated (the caller frees it). */
static uint32_t call(uint32_t type, const char *a, size_t alen, const char *b, size_t blen, char **out, uint32_t *outlen) {
  if (alen + blen > XS_MAX) {
    fprintf(stderr, "xsop: payload of %zu bytes is over %d\n", alen + blen, XS_MAX);
    exit(2);
  }
  char msg[sizeof(struct hdr) + XS_MAX];
  struct hdr h = {.type = type, .req_id = next_req++, .tx_id = 0, .len = (uint32_t)(alen + blen)};
  memcpy(msg, &h, sizeof h);
  memcpy(msg + sizeof h, a, alen);
  if (blen > 0) memcpy(msg + sizeof h + alen, b, blen);
  /* one write per message: the xenbus device takes a message only whole */
  size_t total = sizeof h + alen + blen;
  ssize_t w = write(fd, msg, total);
  if (w < 0 || (size_t)w != total) die("write");
  struct hdr r;
  read_full(&r, sizeof r);
  if (r.len > XS_MAX) {
    fprintf(stderr, "xsop: reply of %u bytes\n", r.len);
    exit(2);
  }
  char *p = malloc(r.len + 1);
  if (p == NULL) die("malloc");
  read_full(p, r.len);
  p[r.len] = '\0';
  *out = p;
  *outlen = r.len;
  return r.type;
}

/* path + its NUL (and for write, the value with no NUL after it) */
static int op(uint32_t type, const char *path, const char *value, size_t vlen, int print) {
  char *rep;
  uint32_t n;
  uint32_t t = call(type, path, strlen(path) + 1, value, vlen, &rep, &n);
  if (t == XS_ERROR) {
    printf("ERR %s\n", rep);
    free(rep);
    return 1;
  }
  if (print == 1) { /* a value */
    fwrite(rep, 1, n, stdout);
    putchar('\n');
  } else if (print == 2) { /* NUL-separated names */
    for (uint32_t i = 0; i < n; i += (uint32_t)strlen(rep + i) + 1)
      if (rep[i] != '\0') puts(rep + i);
  } else if (print == 3) {
    puts("OK");
  }
  free(rep);
  return 0;
}

static long number(const char *s, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *s == '\0' || *end != '\0' || v < 0 || v > max) {
    fprintf(stderr, "xsop: not a number from 0 to %ld: %s\n", max, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: xsop read|ls|rm PATH | write PATH VALUE | fill PATH N VALUE | big PATH SIZE\n");
    return 2;
  }
  const char *cmd = argv[1], *path = argv[2];
  open_store();
  if (strcmp(cmd, "read") == 0 && argc == 3) return op(XS_READ, path, NULL, 0, 1);
  if (strcmp(cmd, "ls") == 0 && argc == 3) return op(XS_DIRECTORY, path, NULL, 0, 2);
  if (strcmp(cmd, "rm") == 0 && argc == 3) return op(XS_RM, path, NULL, 0, 3);
  if (strcmp(cmd, "write") == 0 && argc == 4) return op(XS_WRITE, path, argv[3], strlen(argv[3]), 3);
  if (strcmp(cmd, "big") == 0 && argc == 4) {
    size_t size = (size_t)number(argv[3], XS_MAX - 1 - (long)strlen(path));
    char *v = malloc(size + 1);
    if (v == NULL) die("malloc");
    memset(v, 'x', size);
    return op(XS_WRITE, path, v, size, 3);
  }
  if (strcmp(cmd, "fill") == 0 && argc == 5) {
    long n = number(argv[3], 1000000);
    char sub[XS_MAX];
    long i = 0;
    int rc = 0;
    for (; i < n; i++) {
      snprintf(sub, sizeof sub, "%s/%ld", path, i);
      if ((rc = op(XS_WRITE, sub, argv[4], strlen(argv[4]), 0)) != 0) break;
    }
    printf("%ld\n", i);
    return rc;
  }
  fprintf(stderr, "xsop: bad arguments for %s\n", cmd);
  return 2;
}
