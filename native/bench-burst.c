/*
 * bench-burst: starts one program several times at once, as libxl starts a domain's hotplug scripts (a
 * fork and exec per disk from a small C process), and reports how long until the last one exited. Used by
 * `npm run bench -- hook` so that the figures do not include Node's own (much slower) process spawning.
 *
 *   bench-burst PROG [ARG...] -- VAR=VALUE...     one child per VAR=VALUE, each with that variable set
 *
 * Prints "wall_us <n>" then "exit <i> <code>" per child on stdout; the children's stderr goes to ours.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int main(int argc, char **argv) {
  int sep = -1;
  for (int i = 1; i < argc; i++) if (strcmp(argv[i], "--") == 0) { sep = i; break; }
  if (sep < 2 || sep == argc - 1) {
    fprintf(stderr, "usage: bench-burst PROG [ARG...] -- VAR=VALUE...\n");
    return 2;
  }
  int n = argc - sep - 1;
  pid_t *pids = calloc((size_t)n, sizeof *pids);
  int *codes = calloc((size_t)n, sizeof *codes);
  if (!pids || !codes) return 1;
  argv[sep] = NULL; /* argv[1..sep-1] is the child's argv */
  long long t0 = now_us();
  for (int i = 0; i < n; i++) {
    char *assign = argv[sep + 1 + i];
    char *eq = strchr(assign, '=');
    if (!eq) {
      fprintf(stderr, "bench-burst: %s is not VAR=VALUE\n", assign);
      return 2;
    }
    pid_t p = fork();
    if (p < 0) { perror("fork"); return 1; }
    if (p == 0) {
      *eq = 0;
      setenv(assign, eq + 1, 1);
      execv(argv[1], argv + 1);
      perror("execv");
      _exit(127);
    }
    pids[i] = p;
  }
  for (int left = n; left > 0; left--) {
    int st;
    pid_t p = wait(&st);
    if (p < 0) { perror("wait"); return 1; }
    for (int i = 0; i < n; i++) {
      if (pids[i] == p) codes[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
  }
  long long wall = now_us() - t0;
  printf("wall_us %lld\n", wall);
  for (int i = 0; i < n; i++) printf("exit %d %d\n", i, codes[i]);
  return 0;
}
