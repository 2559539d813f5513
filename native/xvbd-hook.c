/*
 * xvbd-hook: libxl's hotplug script for xvbd disks (script=xvbd), without starting Node per disk.
 *
 * One job, as Qubes' not-script: check argv and XENBUS_PATH strictly, send one JSON line
 *   {"op":"serve"|"release","backend":"backend/vbd/<domid>/<devid>"}
 * to the daemon ($XVBD_RUN_DIR/control.sock) or, when none listens, to the on-demand hook server
 * ($XVBD_RUN_DIR/hook.sock), starting that server once (under a lock, detached) when it is not running
 * either, and wait for one reply line. Exit 0 only on {"ok":true,...}: the server answers only once the
 * backend's physical-device is written and the device is held; on a refusal it has written hotplug-error
 * and hotplug-status=error as the block script does. No shell, no xenstore library, no allocation that
 * depends on input beyond fixed buffers. See docs/hook.md.
 *
 * Exit codes: 0 served/released, 1 refused or failed (libxl fails the device), 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef XVBD_NODE
#define XVBD_NODE "/usr/bin/node"
#endif
#ifndef XVBD_CLI_MAIN
#define XVBD_CLI_MAIN "/usr/lib/xvbd/dist/src/cli/main.js"
#endif

/* DOMID_FIRST_RESERVED (xen/include/public/xen.h): frontend domids are below it. */
#define DOMID_FIRST_RESERVED 0x7ff0u
#define MAX_REPLY (64 * 1024)
#define HOTPLUG_LOG "/var/log/xen/xen-hotplug.log"

static const char *g_op = "?";
static const char *g_path = "?";

/* One line to stderr and, as the other Xen hotplug scripts do, to the hotplug log when it exists. */
static void say(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char line[1400];
  int n = snprintf(line, sizeof line, "xvbd: %s %s: %s\n", g_op, g_path, msg);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  ssize_t w = write(2, line, (size_t)n);
  (void)w;
  int fd = open(HOTPLUG_LOG, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  if (fd >= 0) {
    w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
  }
}

/* A canonical decimal: "0" or [1-9][0-9]*, at most 10 digits, value <= max. Returns 0 on success. */
int parse_decimal(const char *s, size_t len, uint32_t max, uint32_t *out) {
  if (len == 0 || len > 10) return -1;
  if (s[0] == '0' && len > 1) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > max) return -1;
  *out = (uint32_t)v;
  return 0;
}

/* "backend/vbd/<domid>/<devid>" and nothing else. Returns 0, or -1 with *why set. */
int parse_xenbus_path(const char *p, uint32_t *domid, uint32_t *devid, const char **why) {
  static const char prefix[] = "backend/vbd/";
  if (strncmp(p, prefix, sizeof prefix - 1) != 0) {
    *why = "must begin with backend/vbd/";
    return -1;
  }
  const char *a = p + sizeof prefix - 1;
  const char *slash = strchr(a, '/');
  if (!slash || strchr(slash + 1, '/')) {
    *why = "expected backend/vbd/DOMID/DEVID";
    return -1;
  }
  if (parse_decimal(a, (size_t)(slash - a), DOMID_FIRST_RESERVED - 1, domid) != 0) {
    *why = "the domain ID is not a canonical decimal below 32752";
    return -1;
  }
  const char *b = slash + 1;
  if (parse_decimal(b, strlen(b), 0xffffffffu, devid) != 0) {
    *why = "the device ID is not a canonical decimal below 2^32";
    return -1;
  }
  return 0;
}

/* ---- the reply: one JSON object; only its top-level "ok" (bool) and "error" (string) are used ---- */

struct reply {
  int ok;            /* -1 absent, 0 false, 1 true */
  char error[512];   /* decoded, control characters replaced */
  int have_error;
};

struct js {
  const char *s, *end;
  int depth;
};

static void ws(struct js *j) {
  while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\r' || *j->s == '\n')) j->s++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A JSON string; decoded into out (truncated, NUL-terminated) when out is not NULL. */
static int jstring(struct js *j, char *out, size_t cap) {
  size_t n = 0;
  if (j->s >= j->end || *j->s != '"') return -1;
  j->s++;
  while (j->s < j->end) {
    unsigned char c = (unsigned char)*j->s++;
    if (c == '"') {
      if (out) out[n < cap ? n : cap - 1] = 0;
      return 0;
    }
    if (c < 0x20) return -1;
    unsigned cp = c;
    if (c == '\\') {
      if (j->s >= j->end) return -1;
      char e = *j->s++;
      switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': case 'f': case 'n': case 'r': case 't': cp = ' '; break;
        case 'u': {
          if (j->end - j->s < 4) return -1;
          cp = 0;
          for (int k = 0; k < 4; k++) {
            int h = hexval(j->s[k]);
            if (h < 0) return -1;
            cp = cp * 16 + (unsigned)h;
          }
          j->s += 4;
          if (cp < 0x20 || (cp >= 0xd800 && cp <= 0xdfff)) cp = '?';
          break;
        }
        default: return -1;
      }
    }
    if (out && cap > 0) {
      /* UTF-8 bytes pass through; a decoded \u escape is written as UTF-8 */
      unsigned char buf[3];
      size_t len = 1;
      if (c == '\\' && cp >= 0x80) {
        if (cp < 0x800) { buf[0] = (unsigned char)(0xc0 | (cp >> 6)); buf[1] = (unsigned char)(0x80 | (cp & 0x3f)); len = 2; }
        else { buf[0] = (unsigned char)(0xe0 | (cp >> 12)); buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)); buf[2] = (unsigned char)(0x80 | (cp & 0x3f)); len = 3; }
      } else {
        buf[0] = (unsigned char)cp;
      }
      for (size_t k = 0; k < len; k++) if (n + 1 < cap) out[n++] = (char)buf[k];
    }
  }
  return -1;
}

static int jvalue(struct js *j);

static int jliteral(struct js *j, const char *lit) {
  size_t l = strlen(lit);
  if ((size_t)(j->end - j->s) < l || memcmp(j->s, lit, l) != 0) return -1;
  j->s += l;
  return 0;
}

static int jnumber(struct js *j) {
  const char *st = j->s;
  if (j->s < j->end && *j->s == '-') j->s++;
  if (j->s >= j->end || *j->s < '0' || *j->s > '9') return -1;
  while (j->s < j->end && ((*j->s >= '0' && *j->s <= '9') || *j->s == '.' || *j->s == 'e' || *j->s == 'E' || *j->s == '+' || *j->s == '-')) j->s++;
  return j->s > st ? 0 : -1;
}

/* An object; with r set (the top level), "ok" and "error" are recorded. */
static int jobject(struct js *j, struct reply *r) {
  if (++j->depth > 32) return -1;
  j->s++; /* '{' */
  ws(j);
  if (j->s < j->end && *j->s == '}') {
    j->s++;
    j->depth--;
    return 0;
  }
  for (;;) {
    char key[16];
    ws(j);
    if (jstring(j, key, sizeof key) != 0) return -1;
    ws(j);
    if (j->s >= j->end || *j->s++ != ':') return -1;
    ws(j);
    if (r && strcmp(key, "ok") == 0) {
      if (jliteral(j, "true") == 0) r->ok = 1;
      else if (jliteral(j, "false") == 0) r->ok = 0;
      else return -1;
    } else if (r && strcmp(key, "error") == 0 && j->s < j->end && *j->s == '"') {
      if (jstring(j, r->error, sizeof r->error) != 0) return -1;
      r->have_error = 1;
    } else if (jvalue(j) != 0) {
      return -1;
    }
    ws(j);
    if (j->s >= j->end) return -1;
    if (*j->s == ',') { j->s++; continue; }
    if (*j->s == '}') { j->s++; j->depth--; return 0; }
    return -1;
  }
}

static int jarray(struct js *j) {
  if (++j->depth > 32) return -1;
  j->s++;
  ws(j);
  if (j->s < j->end && *j->s == ']') { j->s++; j->depth--; return 0; }
  for (;;) {
    ws(j);
    if (jvalue(j) != 0) return -1;
    ws(j);
    if (j->s >= j->end) return -1;
    if (*j->s == ',') { j->s++; continue; }
    if (*j->s == ']') { j->s++; j->depth--; return 0; }
    return -1;
  }
}

static int jvalue(struct js *j) {
  if (j->s >= j->end) return -1;
  switch (*j->s) {
    case '{': return jobject(j, NULL);
    case '[': return jarray(j);
    case '"': return jstring(j, NULL, 0);
    case 't': return jliteral(j, "true");
    case 'f': return jliteral(j, "false");
    case 'n': return jliteral(j, "null");
    default: return jnumber(j);
  }
}

/* The whole line must be one object with a boolean "ok". Returns 0, or -1 for garbage. */
int parse_reply(const char *line, size_t len, struct reply *r) {
  struct js j = {line, line + len, 0};
  memset(r, 0, sizeof *r);
  r->ok = -1;
  ws(&j);
  if (j.s >= j.end || *j.s != '{') return -1;
  if (jobject(&j, r) != 0) return -1;
  ws(&j);
  if (j.s != j.end || r->ok < 0) return -1;
  for (char *c = r->error; *c; c++) if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
  return 0;
}

/* ---- asking a server ---- */

enum ask { ASK_OK, ASK_REFUSED, ASK_NOSERVER, ASK_CLOSED, ASK_FAILED };

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static long env_ms(const char *name, long dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *e;
  long x = strtol(v, &e, 10);
  return (*e || x <= 0 || x > 3600000) ? dflt : x;
}

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

static int sock_path(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s/%s", dir, name);
  return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* Sends the request line to the socket at path and reads one reply line. */
static enum ask ask(const char *path, const char *req, struct reply *r, char *why, size_t whycap) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa.sun_path) {
    snprintf(why, whycap, "socket path too long: %s", path);
    return ASK_FAILED;
  }
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, whycap, "socket: %s", strerror(errno));
    return ASK_FAILED;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED) return ASK_NOSERVER;
    snprintf(why, whycap, "connect %s: %s", path, strerror(e));
    return ASK_FAILED;
  }
  size_t len = strlen(req), off = 0;
  while (off < len) {
    ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      close(fd);
      snprintf(why, whycap, "%s closed the connection before the request was sent", path);
      return ASK_CLOSED;
    }
    off += (size_t)w;
  }
  static char buf[MAX_REPLY + 1];
  size_t got = 0;
  long deadline = now_ms() + env_ms("XVBD_HOOK_TIMEOUT_MS", 60000);
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) {
      close(fd);
      snprintf(why, whycap, "no reply from %s within %ld ms", path, env_ms("XVBD_HOOK_TIMEOUT_MS", 60000));
      return ASK_FAILED;
    }
    struct pollfd pf = {fd, POLLIN, 0};
    int pr = poll(&pf, 1, (int)(left > INT_MAX ? INT_MAX : left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t n = read(fd, buf + got, MAX_REPLY - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      snprintf(why, whycap, "%s closed the connection without a reply", path);
      return ASK_CLOSED;
    }
    char *nl = memchr(buf + got, '\n', (size_t)n);
    got += (size_t)n;
    if (nl) {
      close(fd);
      if (parse_reply(buf, (size_t)(nl - buf), r) != 0) {
        snprintf(why, whycap, "%s sent a reply that is not a JSON object with \"ok\"", path);
        return ASK_FAILED;
      }
      return r->ok ? ASK_OK : ASK_REFUSED;
    }
    if (got >= MAX_REPLY) {
      close(fd);
      snprintf(why, whycap, "%s sent a reply longer than %d bytes", path, MAX_REPLY);
      return ASK_FAILED;
    }
  }
}

/* ---- starting the on-demand hook server ---- */

/*
 * Under $RUN/hook-server.lock: if hook.sock still does not answer, start `node main.js hook server
 * --ready-fd 3` in its own session (double fork: never our child, never libxl's), and wait until it says
 * "ready" on the pipe (or dies: EOF). Other hooks of the burst wait on the lock, then find it listening.
 */
static int start_server(const char *rundir, const char *hooksock, char *why, size_t whycap) {
  if (mkdir(rundir, 0700) != 0 && errno != EEXIST) {
    snprintf(why, whycap, "mkdir %s: %s", rundir, strerror(errno));
    return -1;
  }
  char lockp[PATH_MAX], logp[PATH_MAX];
  if (sock_path(lockp, sizeof lockp, rundir, "hook-server.lock") || sock_path(logp, sizeof logp, rundir, "hook-server.log")) {
    snprintf(why, whycap, "run dir path too long");
    return -1;
  }
  int lk = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lk < 0) {
    snprintf(why, whycap, "open %s: %s", lockp, strerror(errno));
    return -1;
  }
  long deadline = now_ms() + env_ms("XVBD_HOOK_START_TIMEOUT_MS", 30000);
  while (flock(lk, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      snprintf(why, whycap, "flock %s: %s", lockp, strerror(errno));
      close(lk);
      return -1;
    }
    if (now_ms() > deadline) {
      snprintf(why, whycap, "timed out waiting for %s", lockp);
      close(lk);
      return -1;
    }
    sleep_ms(2);
  }
  /* someone else may have started it while we waited */
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, hooksock);
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
    close(probe);
    close(lk);
    return 0;
  }
  if (probe >= 0) close(probe);

  const char *node = getenv("XVBD_NODE");
  const char *cli = getenv("XVBD_CLI_MAIN");
  if (!node || !*node) node = XVBD_NODE;
  if (!cli || !*cli) cli = XVBD_CLI_MAIN;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    snprintf(why, whycap, "pipe: %s", strerror(errno));
    close(lk);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whycap, "fork: %s", strerror(errno));
    close(p[0]);
    close(p[1]);
    close(lk);
    return -1;
  }
  if (pid == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    /* fds 0-2 first, then the pipe as fd 3; everything else is close-on-exec or closed here */
    int w = fcntl(p[1], F_DUPFD_CLOEXEC, 10);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int log = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (w < 0 || nul < 0) _exit(127);
    dup2(nul, 0);
    dup2(log >= 0 ? log : nul, 1);
    dup2(log >= 0 ? log : nul, 2);
    dup2(w, 3);
    for (int fd = 4; fd < 1024; fd++) close(fd);
    if (chdir("/") != 0) _exit(127);
    signal(SIGPIPE, SIG_DFL);
    char *const av[] = {(char *)node, (char *)cli, "hook", "server", "--ready-fd", "3", NULL};
    execv(node, av);
    _exit(127);
  }
  close(p[1]);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
  char buf[16];
  size_t got = 0;
  int ok = 0;
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) break;
    struct pollfd pf = {p[0], POLLIN, 0};
    int pr = poll(&pf, 1, (int)left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) break;
    ssize_t n = read(p[0], buf + got, sizeof buf - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    buf[got] = 0;
    if (strstr(buf, "ready\n")) { ok = 1; break; }
    if (got >= sizeof buf - 1) break;
  }
  close(p[0]);
  close(lk);
  if (!ok) {
    snprintf(why, whycap, "the hook server (%s %s hook server) did not start; see %s", node, cli, logp);
    return -1;
  }
  return 0;
}

#ifndef XVBD_HOOK_NO_MAIN
int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2 || argc > 3 || (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "remove") != 0)) {
    say("usage: %s add|remove [XENBUS_PATH=backend/vbd/DOMID/DEVID]", argc > 0 ? argv[0] : "xvbd");
    return 2;
  }
  g_op = argv[1];
  const char *xp = getenv("XENBUS_PATH");
  if (argc == 3) {
    if (strncmp(argv[2], "XENBUS_PATH=", 12) != 0) {
      say("the second argument must be XENBUS_PATH=backend/vbd/DOMID/DEVID");
      return 2;
    }
    if (xp && strcmp(xp, argv[2] + 12) != 0) {
      say("XENBUS_PATH given in the environment and as an argument, with different values");
      return 1;
    }
    xp = argv[2] + 12;
  }
  if (!xp || !*xp) {
    say("XENBUS_PATH is not set");
    return 1;
  }
  if (strlen(xp) > 64) {
    say("bad XENBUS_PATH (longer than 64 bytes)");
    return 1;
  }
  uint32_t domid, devid;
  const char *why = "";
  if (parse_xenbus_path(xp, &domid, &devid, &why) != 0) {
    say("bad XENBUS_PATH \"%s\": %s", xp, why);
    return 1;
  }
  char canon[64];
  snprintf(canon, sizeof canon, "backend/vbd/%u/%u", domid, devid);
  g_path = canon;

  const char *rundir = getenv("XVBD_RUN_DIR");
  if (!rundir || !*rundir) rundir = "/run/xvbd";
  if (rundir[0] != '/' || strlen(rundir) > 80) {
    say("XVBD_RUN_DIR must be an absolute path of at most 80 bytes");
    return 1;
  }
  char ctl[128], hook[128];
  sock_path(ctl, sizeof ctl, rundir, "control.sock");
  sock_path(hook, sizeof hook, rundir, "hook.sock");
  char req[160];
  snprintf(req, sizeof req, "{\"op\":\"%s\",\"backend\":\"%s\"}\n", strcmp(g_op, "add") == 0 ? "serve" : "release", canon);

  struct reply r;
  char msg[512] = "";
  int started = 0;
  /* A server that goes away mid-request (a daemon restarting, a hook server idling out) closes the
     connection without a reply: serve and release are idempotent, so ask again, a few times. */
  for (int attempt = 0; attempt < 6; attempt++) {
    if (attempt > 0) sleep_ms(20L * attempt);
    const char *who = "the daemon";
    enum ask a = ask(ctl, req, &r, msg, sizeof msg);
    if (a == ASK_NOSERVER) {
      who = "the hook server";
      a = ask(hook, req, &r, msg, sizeof msg);
      if (a == ASK_NOSERVER) {
        if (started >= 2 || start_server(rundir, hook, msg, sizeof msg) != 0) {
          say("%s", started >= 2 ? "the hook server keeps going away" : msg);
          return 1;
        }
        started++;
        attempt--; /* starting is not a failed attempt */
        continue;
      }
    }
    switch (a) {
      case ASK_OK:
        say("%s by %s", strcmp(g_op, "add") == 0 ? "served" : "released", who);
        return 0;
      case ASK_REFUSED:
        say("refused by %s: %s", who, r.have_error ? r.error : "(no reason given)");
        return 1;
      case ASK_CLOSED:
        continue;
      default:
        say("%s", msg);
        return 1;
    }
  }
  say("%s", msg);
  return 1;
}
#endif
