/*
 * The interop oracle: jlog's own library, driven from the command line, so dvip's tests and
 * benchmarks can check dvip's journals against the real thing.
 *
 *   jlog-oracle init DIR [SUBSCRIBER...]          make a journal, as jlog's README writer does
 *   jlog-oracle add DIR SUBSCRIBER begin|end       add a subscriber
 *   jlog-oracle write DIR COUNT PREFIX [SECONDS]  append PREFIX-0 .. PREFIX-(COUNT-1),
 *                                                  stamped SECONDS.i (microseconds) if given
 *   jlog-oracle read DIR SUBSCRIBER [checkpoint]   print the records after the checkpoint as
 *                                                  SEGMENT:POSITION SECONDS.MICROS PAYLOAD:
 *                                                  all of them, checkpointing, or without
 *                                                  checkpoint those of one segment
 *   jlog-oracle follow DIR SUBSCRIBER COUNT        read and checkpoint until COUNT records
 *                                                  have been read, printing them as above
 *   jlog-oracle bench-write DIR COUNT SIZE         append COUNT records of SIZE bytes;
 *                                                  print nanoseconds taken
 *   jlog-oracle bench-read DIR SUBSCRIBER          read everything; print records, bytes
 *                                                  and nanoseconds taken
 *
 * Exit status 0 on success; 2 with jlog's error on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>
#include "jlog.h"

static void die(jlog_ctx *ctx, const char *what) {
  fprintf(stderr, "jlog-oracle: %s: %s (errno %d)\n", what,
          ctx ? jlog_ctx_err_string(ctx) : "?", ctx ? jlog_ctx_errno(ctx) : 0);
  exit(2);
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static jlog_ctx *writer(const char *dir) {
  jlog_ctx *ctx = jlog_new(dir);
  if (jlog_ctx_open_writer(ctx) != 0) die(ctx, "open writer");
  return ctx;
}

static jlog_ctx *reader(const char *dir, const char *sub) {
  jlog_ctx *ctx = jlog_new(dir);
  if (jlog_ctx_open_reader(ctx, sub) != 0) die(ctx, "open reader");
  return ctx;
}

/* Reads one interval; prints (if out) and counts its records; checkpoints if asked. */
static int read_interval(jlog_ctx *ctx, int checkpoint, FILE *out, long long *bytes) {
  jlog_id begin, end, cur;
  jlog_message m;
  int count = jlog_ctx_read_interval(ctx, &begin, &end);
  if (count < 0) die(ctx, "read interval");
  if (count == 0) return 0;
  cur = begin;
  for (int i = 0; i < count; i++) {
    if (jlog_ctx_read_message(ctx, &cur, &m) != 0) die(ctx, "read message");
    if (out) {
      fprintf(out, "%08x:%08x %u.%06u ", cur.log, cur.marker, m.header->tv_sec, m.header->tv_usec);
      fwrite(m.mess, 1, m.mess_len, out);
      fputc('\n', out);
    }
    if (bytes) *bytes += m.mess_len;
    if (i + 1 < count) JLOG_ID_ADVANCE(&cur);
  }
  if (checkpoint && jlog_ctx_read_checkpoint(ctx, &end) != 0) die(ctx, "checkpoint");
  return count;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: jlog-oracle init|add|write|read|follow|bench-write|bench-read DIR ...\n");
    return 2;
  }
  const char *cmd = argv[1], *dir = argv[2];

  if (!strcmp(cmd, "init")) {
    jlog_ctx *ctx = jlog_new(dir);
    if (jlog_ctx_init(ctx) != 0) die(ctx, "init");
    for (int i = 3; i < argc; i++)
      if (jlog_ctx_add_subscriber(ctx, argv[i], JLOG_BEGIN) != 0) die(ctx, "add subscriber");
    jlog_ctx_close(ctx);
    return 0;
  }
  if (!strcmp(cmd, "add") && argc == 5) {
    jlog_ctx *ctx = jlog_new(dir);
    jlog_position whence = strcmp(argv[4], "end") ? JLOG_BEGIN : JLOG_END;
    if (jlog_ctx_add_subscriber(ctx, argv[3], whence) != 0) die(ctx, "add subscriber");
    jlog_ctx_close(ctx);
    return 0;
  }
  if (!strcmp(cmd, "write") && argc >= 5) {
    jlog_ctx *ctx = writer(dir);
    long count = atol(argv[3]);
    char buf[4096];
    for (long i = 0; i < count; i++) {
      int len = snprintf(buf, sizeof(buf), "%s-%ld", argv[4], i);
      jlog_message m = { .mess = buf, .mess_len = len };
      if (argc >= 6) {
        struct timeval when = { .tv_sec = atol(argv[5]), .tv_usec = i % 1000000 };
        if (jlog_ctx_write_message(ctx, &m, &when) != 0) die(ctx, "write");
      } else if (jlog_ctx_write(ctx, buf, len) != 0) die(ctx, "write");
    }
    jlog_ctx_close(ctx);
    return 0;
  }
  if (!strcmp(cmd, "read") && argc >= 4) {
    jlog_ctx *ctx = reader(dir, argv[3]);
    int checkpoint = argc >= 5 && !strcmp(argv[4], "checkpoint");
    /* jlog reads one segment per interval. Without checkpoints the next interval is the
       same one, so print it once; with them, go on while intervals bring records, stepping
       over closed, fully read segments (an interval of 0 that moved the checkpoint). */
    if (!checkpoint) {
      read_interval(ctx, 0, stdout, NULL);
      jlog_ctx_close(ctx);
      return 0;
    }
    for (int idle = 0; idle < 3;) {
      if (read_interval(ctx, checkpoint, stdout, NULL) == 0) idle++;
      else idle = 0;
    }
    jlog_ctx_close(ctx);
    return 0;
  }
  if (!strcmp(cmd, "follow") && argc == 5) {
    jlog_ctx *ctx = reader(dir, argv[3]);
    long want = atol(argv[4]), seen = 0;
    /* A deadline, so a reader that misses records fails the test instead of hanging it. */
    long long deadline = now_ns() + 60LL * 1000000000LL;
    while (seen < want) {
      int got = read_interval(ctx, 1, stdout, NULL);
      fflush(stdout);
      if (got == 0) {
        if (now_ns() > deadline) {
          fprintf(stderr, "jlog-oracle: follow: %ld of %ld records after 60 s\n", seen, want);
          return 3;
        }
        usleep(1000);
      }
      seen += got;
    }
    jlog_ctx_close(ctx);
    return 0;
  }
  if (!strcmp(cmd, "bench-write") && argc == 5) {
    jlog_ctx *ctx = writer(dir);
    long count = atol(argv[3]), size = atol(argv[4]);
    char *buf = malloc(size);
    memset(buf, 'x', size);
    long long start = now_ns();
    for (long i = 0; i < count; i++)
      if (jlog_ctx_write(ctx, buf, size) != 0) die(ctx, "write");
    long long took = now_ns() - start;
    jlog_ctx_close(ctx);
    printf("%lld\n", took);
    return 0;
  }
  if (!strcmp(cmd, "bench-read") && argc == 4) {
    jlog_ctx *ctx = reader(dir, argv[3]);
    long long bytes = 0, records = 0, start = now_ns();
    for (int idle = 0; idle < 3;) {
      int got = read_interval(ctx, 1, NULL, &bytes);
      records += got;
      if (got == 0) idle++;
      else idle = 0;
    }
    long long took = now_ns() - start;
    jlog_ctx_close(ctx);
    printf("%lld %lld %lld\n", records, bytes, took);
    return 0;
  }
  fprintf(stderr, "jlog-oracle: unknown command or wrong arguments: %s\n", cmd);
  return 2;
}
