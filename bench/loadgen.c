/*
 * loadgen: a native Kafka load generator on librdkafka, used by bench/bench.py.
 *
 * Every mode prints exactly one JSON object on stdout (one line); progress
 * and librdkafka logs go to stderr.
 *
 *   loadgen produce -b HOST:PORT -t TOPIC -n N -s SIZE [-a 1|all|0] [-z none|lz4]
 *                   [-r RATE] [-d MAX_SECONDS] [-l LINGER_MS] [-X key=value]...
 *       Produce N records of SIZE bytes (no key; librdkafka's default sticky
 *       partitioner spreads them over the topic's partitions). Latency per
 *       record = delivery report time - produce() call time (with -r: the
 *       record's scheduled send time, so a stalled producer is not hidden).
 *       linger.ms is LINGER_MS (default 5, librdkafka's own default).
 *   loadgen consume -b .. -t TOPIC -p PARTITIONS -n N [-d MAX_SECONDS]
 *       assign() partitions 0..P-1 from offset 0 and read until N records.
 *   loadgen fetch   -b HOST:PORT -t TOPIC -p PARTITIONS -n N -s SIZE [-k PASSES] [-d MAX_SECONDS]
 *       A raw consumer without librdkafka: one TCP connection to the first
 *       bootstrap address (which must lead every partition), a Metadata v4
 *       check that the topic has partitions 0..P-1, then (clock started)
 *       Fetch v4 for them from offset 0, one request in flight. Each record
 *       batch's CRC-32C is verified and its records_count counted from the
 *       header; records are not decoded, so consume_bytes = records * SIZE
 *       (pass the -s the topic was produced with). With -k the N records
 *       are read PASSES times (from offset 0 again after each pass). Shows what the broker can
 *       serve without librdkafka's per-message cost. Output fields as consume,
 *       plus fetch_wire_bytes (response bytes read) and fetch_requests.
 *   loadgen pc      -b .. -t TOPIC -p PARTITIONS -n N -s SIZE [produce options]
 *       A consumer (assigned from offset 0) and a producer at once, in one
 *       process; end-to-end latency = consume time - the CLOCK_MONOTONIC stamp
 *       the producer put in the first 8 bytes of the value.
 *   loadgen topic-create -b .. -t TOPIC -p PARTITIONS [-R REPLICATION_FACTOR]
 *       CreateTopics, then wait until Metadata shows every partition with a leader.
 *   loadgen topic-delete -b .. -t TOPIC
 *   loadgen metadata -b .. [-t TOPIC]    broker count; the topic's smallest replica/ISR counts
 *   loadgen tcp  [-d SECONDS]            loopback TCP throughput (one sender, one receiver)
 *   loadgen disk -f FILE [-m MIB]        sequential write of MIB MiB in 1 MiB writes + fdatasync
 *   loadgen evict DIR                    fsync + posix_fadvise(DONTNEED) every file under DIR,
 *                                        reporting page-cache-resident bytes before and after
 *
 * Values are words drawn from a fixed pseudo-random 1,000-word vocabulary
 * (text-like, so lz4 has something to find), with the send timestamp in the
 * first 8 bytes.
 *
 * Build: cc -O2 -o loadgen loadgen.c -lrdkafka -lpthread -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* ---------------------------------------------------------------- utilities */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* Still one JSON line, so the driver can report the reason. */
    printf("{\"ok\":false,\"error\":\"");
    for (const char *p = buf; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        if ((unsigned char)*p < 0x20) putchar(' ');
        else putchar(*p);
    }
    printf("\"}\n");
    fflush(stdout);
    fprintf(stderr, "loadgen: %s\n", buf);
    exit(1);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
    }
    fputc('"', f);
}

/* ------------------------------------------------- log-linear latency histogram
 * Values in microseconds. Exact below 512 us, then 256 sub-buckets per power
 * of two (relative error < 0.4%). */

#define SUB 256
#define NBUCKETS (2 * SUB + 48 * SUB)

typedef struct {
    uint64_t b[NBUCKETS];
    uint64_t count;
    uint64_t max;
} hist_t;

static int hist_index(uint64_t v) {
    if (v < 2 * SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v); /* >= 9 */
    int shift = msb - 8;               /* keep 9 significant bits: 256..511 */
    int idx = 2 * SUB + (shift - 1) * SUB + (int)((v >> shift) - SUB);
    return idx < NBUCKETS ? idx : NBUCKETS - 1;
}

static uint64_t hist_value(int idx) {
    if (idx < 2 * SUB) return (uint64_t)idx;
    int k = idx - 2 * SUB;
    int shift = k / SUB + 1;
    uint64_t lo = ((uint64_t)(k % SUB + SUB)) << shift;
    return lo + ((1ULL << shift) >> 1); /* bucket midpoint */
}

static void hist_add(hist_t *h, int64_t us) {
    if (us < 0) us = 0;
    h->b[hist_index((uint64_t)us)]++;
    h->count++;
    if ((uint64_t)us > h->max) h->max = (uint64_t)us;
}

static double hist_pct(const hist_t *h, double pct) {
    if (!h->count) return -1;
    uint64_t rank = (uint64_t)((pct / 100.0) * (double)h->count);
    if (rank >= h->count) rank = h->count - 1;
    uint64_t seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) return (double)hist_value(i);
    }
    return (double)h->max;
}

static void hist_json(FILE *f, const char *name, const hist_t *h) {
    if (!h->count) {
        fprintf(f, ",\"%s\":null", name);
        return;
    }
    fprintf(f, ",\"%s\":{\"count\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}",
            name, h->count, hist_pct(h, 50) / 1000.0, hist_pct(h, 99) / 1000.0, hist_pct(h, 99.9) / 1000.0,
            (double)h->max / 1000.0);
}

/* ------------------------------------------------------------------ options */

typedef struct {
    const char *bootstrap, *topic, *acks, *compression, *file, *linger;
    long long records;
    int size, partitions, rf;
    double rate, max_seconds;
    long mib;
    int passes;
    long long txn; /* records per transaction (-T); 0: not transactional */
    char *extra[64];
    int nextra;
} opts_t;

static opts_t o = {.bootstrap = "127.0.0.1:9092", .acks = "1", .compression = "none", .linger = "5", .records = 1000000,
                   .size = 100, .partitions = 1, .rf = 1, .max_seconds = 600, .mib = 1024};

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die("config %s=%s: %s", k, v, err);
}

static void conf_extra(rd_kafka_conf_t *c) {
    for (int i = 0; i < o.nextra; i++) {
        char *kv = strdup(o.extra[i]);
        char *eq = strchr(kv, '=');
        if (!eq) die("-X wants key=value, got %s", kv);
        *eq = 0;
        conf_set(c, kv, eq + 1);
        free(kv);
    }
}

static char last_error[512];
static atomic_int fatal_error;

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    (void)opaque;
    fprintf(stderr, "loadgen: librdkafka error %s: %s\n", rd_kafka_err2name(err), reason);
    if (err == RD_KAFKA_RESP_ERR__FATAL || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        snprintf(last_error, sizeof last_error, "%s: %s", rd_kafka_err2name(err), reason);
        if (err == RD_KAFKA_RESP_ERR__FATAL) atomic_store(&fatal_error, 1);
    }
}

static rd_kafka_conf_t *base_conf(void) {
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", o.bootstrap);
    conf_set(c, "client.id", "samsa-bench-loadgen");
    rd_kafka_conf_set_error_cb(c, error_cb);
    return c;
}

/* Wait until Metadata shows the topic with `parts` partitions, all led. */
static int wait_topic(rd_kafka_t *rk, const char *topic, int parts, double timeout_s, char *why, size_t whylen) {
    int64_t deadline = now_ns() + (int64_t)(timeout_s * 1e9);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int ok = 0;
    snprintf(why, whylen, "no metadata");
    while (now_ns() < deadline) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < md->topic_cnt; i++) {
                const rd_kafka_metadata_topic_t *t = &md->topics[i];
                if (strcmp(t->topic, topic) != 0) continue;
                if (t->err) {
                    snprintf(why, whylen, "topic error %s", rd_kafka_err2name(t->err));
                    break;
                }
                int led = 0;
                for (int p = 0; p < t->partition_cnt; p++)
                    if (t->partitions[p].leader >= 0 && !t->partitions[p].err) led++;
                if (t->partition_cnt == parts && led == parts) ok = 1;
                else snprintf(why, whylen, "%d/%d partitions with a leader", led, t->partition_cnt);
            }
            rd_kafka_metadata_destroy(md);
        } else {
            snprintf(why, whylen, "metadata: %s", rd_kafka_err2str(err));
        }
        if (ok) break;
        usleep(50000);
    }
    rd_kafka_topic_destroy(rkt);
    return ok;
}

/* ------------------------------------------------------------------ payload */

static char *pool; /* text-like source of values */
#define POOL_SIZE (4 << 20)

static void make_pool(void) {
    uint64_t x = 0x9E3779B97F4A7C15ULL;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    static char words[1000][12];
    for (int w = 0; w < 1000; w++) {
        int len = 2 + (int)(RND() % 9);
        for (int i = 0; i < len; i++) words[w][i] = (char)('a' + RND() % 26);
        words[w][len] = 0;
    }
    pool = malloc(POOL_SIZE + 64);
    size_t at = 0;
    while (at < POOL_SIZE) {
        /* Zipf-ish: favour low word numbers, like natural text. */
        uint64_t r = RND() % 1000;
        r = (r * r) / 1000;
        const char *w = words[r];
        size_t l = strlen(w);
        memcpy(pool + at, w, l);
        at += l;
        pool[at++] = ' ';
    }
#undef RND
}

/* ------------------------------------------------------------------ produce */

typedef struct {
    rd_kafka_t *rk;
    atomic_llong sent, delivered, failed, delivered_bytes;
    atomic_int stop;
    atomic_int committing;     /* -T: the main thread is in commit_transaction() */
    atomic_llong commit_gen;   /* -T: commits begun */
    atomic_llong parked_gen;   /* -T: the commit_gen the poller saw while parked */
    hist_t lat;
    hist_t commit_lat; /* commit_transaction() calls, -T only */
    long long txns;
    int64_t last_dr_ns;
    char first_err[256];
    int64_t rate_t0;
} prod_t;

static prod_t P;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    int64_t t = now_ns();
    if (m->err) {
        if (!P.first_err[0])
            snprintf(P.first_err, sizeof P.first_err, "%s: %s", rd_kafka_err2name(m->err), rd_kafka_err2str(m->err));
        atomic_fetch_add(&P.failed, 1);
    } else {
        int64_t sent;
        memcpy(&sent, m->payload, sizeof sent);
        hist_add(&P.lat, (t - sent) / 1000);
        atomic_fetch_add(&P.delivered_bytes, (long long)m->len);
        atomic_fetch_add(&P.delivered, 1);
    }
    P.last_dr_ns = t;
}

/* Serves delivery reports. With -T it parks while the main thread commits:
 * commit_transaction() flushes, and librdkafka's flush serves the delivery
 * reports itself in 10 ms waits that nothing wakes when another thread takes
 * the last report, so a poller running beside it made every commit wait
 * ~10 ms after its records were acknowledged (measured against a debug
 * build, 1 partition: commit p50 11.2 ms -> 1.6 ms). With -T it polls in
 * 1 ms slices, so a commit never waits long for it to park, and dr_cb never
 * runs on two threads at once. */
static void *poller(void *arg) {
    (void)arg;
    int slice_ms = o.txn > 0 ? 1 : 20;
    while (!atomic_load(&P.stop)) {
        if (atomic_load(&P.committing)) {
            atomic_store(&P.parked_gen, atomic_load(&P.commit_gen));
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            continue;
        }
        rd_kafka_poll(P.rk, slice_ms);
    }
    rd_kafka_poll(P.rk, 0);
    return NULL;
}

static rd_kafka_t *make_producer(void) {
    rd_kafka_conf_t *c = base_conf();
    char buf[64];
    conf_set(c, "acks", o.acks);
    conf_set(c, "compression.type", o.compression);
    if (o.txn > 0) {
        /* A transactional producer: idempotent, acks=all, one transactional.id per run. */
        char tid[96];
        snprintf(tid, sizeof tid, "loadgen-%d-%lld", (int)getpid(), (long long)now_ns());
        conf_set(c, "transactional.id", tid);
        conf_set(c, "enable.idempotence", "true");
    } else {
        conf_set(c, "enable.idempotence", "false");
    }
    conf_set(c, "linger.ms", o.linger);
    conf_set(c, "batch.size", "1000000");
    conf_set(c, "batch.num.messages", "10000");
    conf_set(c, "queue.buffering.max.messages", "200000");
    conf_set(c, "queue.buffering.max.kbytes", "65536");
    snprintf(buf, sizeof buf, "%lld", (long long)(o.max_seconds * 1000) + 60000);
    conf_set(c, "message.timeout.ms", buf);
    /* librdkafka requires message.timeout.ms <= transaction.timeout.ms. */
    if (o.txn > 0) conf_set(c, "transaction.timeout.ms", buf);
    conf_extra(c);
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) die("producer: %s", err);
    return rk;
}

typedef struct {
    int64_t t0, t1;
    long long attempted;
} prod_result_t;

static void txn_check(rd_kafka_error_t *e, const char *what) {
    if (!e) return;
    die("%s: %s: %s", what, rd_kafka_error_name(e), rd_kafka_error_string(e));
}

static void txn_begin(rd_kafka_t *rk) {
    txn_check(rd_kafka_begin_transaction(rk), "begin_transaction");
}

/* Commits the open transaction (librdkafka first waits for every record of it
 * to be delivered); the time that takes is the commit latency. */
static void txn_commit(rd_kafka_t *rk) {
    long long gen = atomic_fetch_add(&P.commit_gen, 1) + 1;
    atomic_store(&P.committing, 1);
    while (atomic_load(&P.parked_gen) != gen && !atomic_load(&P.stop)) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    int64_t t = now_ns();
    txn_check(rd_kafka_commit_transaction(rk, -1), "commit_transaction");
    atomic_store(&P.committing, 0);
    hist_add(&P.commit_lat, (now_ns() - t) / 1000);
    P.txns++;
}

/* Runs the produce loop; returns when every sent record has a delivery report
 * (or the deadline passes). */
static prod_result_t run_produce(rd_kafka_t *rk, int64_t deadline_ns) {
    prod_result_t r = {0};
    P.rk = rk;
    pthread_t th;
    pthread_create(&th, NULL, poller, NULL);
    char *val = malloc((size_t)o.size + 16);
    uint64_t x = 88172645463325252ULL;
    int64_t t0 = now_ns();
    r.t0 = t0;
    if (o.txn > 0) txn_begin(rk);
    double ns_per_rec = o.rate > 0 ? 1e9 / o.rate : 0;
    long long i = 0;
    while (i < o.records) {
        int64_t now = now_ns();
        if (now > deadline_ns || atomic_load(&fatal_error)) break;
        long long due = o.records;
        if (o.rate > 0) {
            due = (long long)((double)(now - t0) / ns_per_rec) + 1;
            if (due > o.records) due = o.records;
            if (i >= due) {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        for (; i < due; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int64_t stamp = o.rate > 0 ? t0 + (int64_t)((double)i * ns_per_rec) : now_ns();
            size_t off = (size_t)(x % (POOL_SIZE - (size_t)o.size));
            memcpy(val, pool + off, (size_t)o.size);
            memcpy(val, &stamp, sizeof stamp);
            for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(o.topic), RD_KAFKA_V_VALUE(val, (size_t)o.size),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce: %s", rd_kafka_err2str(err));
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
                if (now_ns() > deadline_ns) goto out;
            }
            atomic_fetch_add(&P.sent, 1);
            if (o.txn > 0 && (i + 1) % o.txn == 0) {
                txn_commit(rk);
                if (i + 1 < o.records) txn_begin(rk);
            }
            if ((i & 4095) == 4095 && now_ns() > deadline_ns) {
                i++;
                goto out;
            }
        }
    }
out:
    /* A last, partial transaction (or one cut short by the deadline) is committed too. */
    if (o.txn > 0 && atomic_load(&P.sent) % o.txn != 0) txn_commit(rk);
    r.attempted = atomic_load(&P.sent);
    /* Wait for every delivery report (the poller serves them). */
    int64_t drain_deadline = now_ns() + (int64_t)60e9;
    while (atomic_load(&P.delivered) + atomic_load(&P.failed) < atomic_load(&P.sent) && now_ns() < drain_deadline &&
           !atomic_load(&fatal_error))
        usleep(500);
    atomic_store(&P.stop, 1);
    pthread_join(th, NULL);
    r.t1 = P.last_dr_ns ? P.last_dr_ns : now_ns();
    free(val);
    return r;
}

static void print_common(const char *mode) {
    printf("{\"ok\":true,\"mode\":\"%s\",\"librdkafka\":", mode);
    json_str(stdout, rd_kafka_version_str());
    printf(",\"topic\":");
    json_str(stdout, o.topic);
    printf(",\"size\":%d,\"acks\":", o.size);
    json_str(stdout, o.acks);
    printf(",\"compression\":");
    json_str(stdout, o.compression);
    printf(",\"rate\":%.0f", o.rate);
}

static void print_produce(const prod_result_t *r) {
    double el = (double)(r->t1 - r->t0) / 1e9;
    long long d = atomic_load(&P.delivered);
    long long bytes = atomic_load(&P.delivered_bytes);
    printf(",\"produced\":%lld,\"produce_failed\":%lld,\"produce_attempted\":%lld,\"produce_bytes\":%lld", d,
           (long long)atomic_load(&P.failed), r->attempted, bytes);
    printf(",\"produce_elapsed_s\":%.6f,\"produce_rec_per_s\":%.1f,\"produce_mb_per_s\":%.3f", el, d / el,
           bytes / el / 1e6);
    printf(",\"produce_error\":");
    json_str(stdout, P.first_err[0] ? P.first_err : last_error);
    hist_json(stdout, "produce_latency", &P.lat);
    if (o.txn > 0) {
        printf(",\"transactions\":%lld,\"txn_records\":%lld", P.txns, o.txn);
        hist_json(stdout, "commit_latency", &P.commit_lat);
    }
}

static int cmd_produce(void) {
    if (!o.topic) die("produce needs -t TOPIC");
    make_pool();
    rd_kafka_t *rk = make_producer();
    char why[256];
    /* Connect and learn the topic's leaders before the clock starts. */
    if (!wait_topic(rk, o.topic, o.partitions, 30, why, sizeof why)) die("topic %s not ready: %s", o.topic, why);
    if (o.txn > 0) txn_check(rd_kafka_init_transactions(rk, 30000), "init_transactions");
    prod_result_t r = run_produce(rk, now_ns() + (int64_t)(o.max_seconds * 1e9));
    print_common("produce");
    print_produce(&r);
    printf("}\n");
    fflush(stdout);
    rd_kafka_flush(rk, 5000);
    rd_kafka_destroy(rk);
    return 0;
}

/* ------------------------------------------------------------------ consume */

typedef struct {
    rd_kafka_t *rk;
    long long want, got, bytes;
    int64_t t0, t1, deadline;
    hist_t e2e;
    int measure_e2e;
    char err[256];
} cons_t;

static rd_kafka_t *make_consumer(void) {
    rd_kafka_conf_t *c = base_conf();
    char gid[64];
    snprintf(gid, sizeof gid, "loadgen-%d-%lld", (int)getpid(), (long long)now_ns());
    conf_set(c, "group.id", gid); /* assign() only; nothing is committed */
    conf_set(c, "enable.auto.commit", "false");
    conf_set(c, "enable.auto.offset.store", "false");
    conf_set(c, "enable.partition.eof", "false");
    conf_set(c, "auto.offset.reset", "earliest");
    conf_set(c, "fetch.wait.max.ms", "100");
    /* Fetch sizes (fetch.max.bytes, max.partition.fetch.bytes) and the local
     * queue thresholds (queued.min.messages, queued.max.messages.kbytes) stay
     * at librdkafka's defaults, as a user runs them. Larger ones let the
     * fetcher run far ahead of the application: with 1 M messages / 256 MB
     * queued per partition the client spent its time on cache misses in its
     * own queue, and consumed 100 B records 15-20% slower.
     *
     * When a partition's local queue is over those thresholds librdkafka
     * postpones its next fetch by fetch.queue.backoff.ms (default 1000 ms):
     * a broker that delivers faster than this process drains would then
     * idle the consumer for a whole second (measured: 0.3 M instead of 2.4 M
     * records/s of 100 B). Check again soon instead, as librdkafka's own
     * documentation of the property suggests. */
    conf_set(c, "fetch.queue.backoff.ms", "10");
    conf_extra(c);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk) die("consumer: %s", err);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void consumer_assign(rd_kafka_t *rk) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(o.partitions);
    for (int p = 0; p < o.partitions; p++)
        rd_kafka_topic_partition_list_add(l, o.topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) die("assign: %s", rd_kafka_err2str(err));
}

static void *consume_loop(void *arg) {
    cons_t *c = arg;
    while (c->got < c->want && now_ns() < c->deadline && !atomic_load(&fatal_error)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m) continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !c->err[0])
                snprintf(c->err, sizeof c->err, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int64_t t = now_ns();
        if (c->measure_e2e && m->len >= 8) {
            int64_t sent;
            memcpy(&sent, m->payload, sizeof sent);
            hist_add(&c->e2e, (t - sent) / 1000);
        }
        c->got++;
        c->bytes += (long long)m->len;
        c->t1 = t;
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static void print_consume(const cons_t *c) {
    double el = (double)((c->t1 ? c->t1 : now_ns()) - c->t0) / 1e9;
    printf(",\"consumed\":%lld,\"consume_bytes\":%lld,\"consume_elapsed_s\":%.6f", c->got, c->bytes, el);
    printf(",\"consume_rec_per_s\":%.1f,\"consume_mb_per_s\":%.3f,\"consume_error\":", c->got / el, c->bytes / el / 1e6);
    json_str(stdout, c->err[0] ? c->err : last_error);
    hist_json(stdout, "e2e_latency", &c->e2e);
}

static int cmd_consume(void) {
    if (!o.topic) die("consume needs -t TOPIC");
    static cons_t c;
    c.rk = make_consumer();
    char why[256];
    if (!wait_topic(c.rk, o.topic, o.partitions, 30, why, sizeof why)) die("topic %s not ready: %s", o.topic, why);
    c.want = o.records;
    c.t0 = now_ns();
    c.deadline = c.t0 + (int64_t)(o.max_seconds * 1e9);
    consumer_assign(c.rk);
    consume_loop(&c);
    print_common("consume");
    print_consume(&c);
    printf("}\n");
    fflush(stdout);
    rd_kafka_consumer_close(c.rk);
    rd_kafka_destroy(c.rk);
    return 0;
}

/* Producer and consumer at once; the consumer is assigned (and has fetched
 * the empty partitions) before the first record is produced. */
static int cmd_pc(void) {
    if (!o.topic) die("pc needs -t TOPIC");
    make_pool();
    static cons_t c;
    c.rk = make_consumer();
    rd_kafka_t *prk = make_producer();
    char why[256];
    if (!wait_topic(prk, o.topic, o.partitions, 30, why, sizeof why)) die("topic %s not ready: %s", o.topic, why);
    c.want = o.records;
    c.measure_e2e = 1;
    consumer_assign(c.rk);
    /* Let the consumer resolve offsets and start fetching. */
    for (int i = 0; i < 10; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, 100);
        if (m) rd_kafka_message_destroy(m);
    }
    int64_t t0 = now_ns();
    c.t0 = t0;
    c.deadline = t0 + (int64_t)(o.max_seconds * 1e9) + (int64_t)30e9;
    pthread_t th;
    pthread_create(&th, NULL, consume_loop, &c);
    prod_result_t r = run_produce(prk, t0 + (int64_t)(o.max_seconds * 1e9));
    /* The consumer waits for what was actually delivered. */
    c.want = atomic_load(&P.delivered);
    pthread_join(th, NULL);
    print_common("pc");
    print_produce(&r);
    print_consume(&c);
    double el = (double)((c.t1 > r.t1 ? c.t1 : r.t1) - t0) / 1e9;
    printf(",\"pc_elapsed_s\":%.6f}\n", el);
    fflush(stdout);
    rd_kafka_flush(prk, 5000);
    rd_kafka_destroy(prk);
    rd_kafka_consumer_close(c.rk);
    rd_kafka_destroy(c.rk);
    return 0;
}

/* ------------------------------ raw fetch (librdkafka only for error names) */

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of a
 * v2 record batch: SSE4.2's crc32 instruction, 8 bytes at a time, when the
 * CPU has it, else a byte-at-a-time table. */

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_byte[256];

static uint32_t crc32c_sw(uint32_t crc, const unsigned char *p, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = crc32c_byte[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p, size_t len) {
    uint64_t c = (uint32_t)~crc;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        c = _mm_crc32_u64(c, w);
    }
    for (; i < len; i++) c = _mm_crc32_u8((uint32_t)c, p[i]);
    return ~(uint32_t)c;
}
#endif

static uint32_t (*crc32c)(uint32_t, const unsigned char *, size_t) = crc32c_sw;
static const char *crc32c_impl = "table";

static void crc32c_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_byte[n] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        crc32c = crc32c_hw;
        crc32c_impl = "sse4.2";
    }
#endif
    /* Self-test: the standard check value on both paths, and both paths
     * agreeing on odd lengths and unaligned starts. */
    if (crc32c_sw(0, (const unsigned char *)"123456789", 9) != 0xE3069283u ||
        crc32c(0, (const unsigned char *)"123456789", 9) != 0xE3069283u)
        die("CRC-32C self-test failed (check value)");
    unsigned char t[4096 + 8];
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (size_t i = 0; i < sizeof t; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t[i] = (unsigned char)x;
    }
    static const size_t lens[] = {0, 1, 7, 8, 9, 61, 4096};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t a = 0; a < 7; a += 3)
            if (crc32c(0, t + a, lens[i]) != crc32c_sw(0, t + a, lens[i]))
                die("CRC-32C self-test failed (%s vs table, %zu bytes at +%zu)", crc32c_impl, lens[i], a);
}

/* Big-endian readers and writers. */
static uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static unsigned char *put16(unsigned char *p, int v) {
    p[0] = (unsigned char)(v >> 8), p[1] = (unsigned char)v;
    return p + 2;
}
static unsigned char *put32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    p[0] = (unsigned char)(u >> 24), p[1] = (unsigned char)(u >> 16), p[2] = (unsigned char)(u >> 8),
    p[3] = (unsigned char)u;
    return p + 4;
}
static unsigned char *put64(unsigned char *p, int64_t v) {
    put32(p, (int32_t)((uint64_t)v >> 32));
    return put32(p + 4, (int32_t)(uint32_t)v);
}

/* Bounds-checked cursor over a response. */
typedef struct {
    const unsigned char *p, *end;
    const char *api; /* for messages */
} rd_t;

#define FETCH_MAX_RESPONSE (128 << 20)
#define FETCH_CLIENT_ID "samsa-bench-loadgen"
#define FETCH_RECV_STEP (256 << 10) /* bytes asked of one recv while a Fetch response streams in */

typedef struct {
    int fd;
    int64_t *offset; /* next fetch offset per partition */
    long long want, got, batches, requests, wire_bytes;
    long long pass_end; /* got at the end of the current pass over the topic */
    int passes;
    int64_t t0, t1, deadline;
    double timeout_s; /* socket receive/send timeout */
} fetch_t;

static fetch_t F;

static void print_fetch(int ok, const char *err) {
    int64_t end = F.t1 ? F.t1 : now_ns();
    double el = F.t0 ? (double)(end - F.t0) / 1e9 : 0;
    long long bytes = F.got * (long long)o.size;
    printf("{\"ok\":%s,\"mode\":\"fetch\",\"topic\":", ok ? "true" : "false");
    json_str(stdout, o.topic);
    printf(",\"size\":%d,\"partitions\":%d,\"crc32c\":\"%s\"", o.size, o.partitions, crc32c_impl);
    if (!ok) {
        printf(",\"error\":");
        json_str(stdout, err);
    }
    printf(",\"consumed\":%lld,\"consume_bytes\":%lld,\"consume_elapsed_s\":%.6f", F.got, bytes, el);
    printf(",\"consume_rec_per_s\":%.1f,\"consume_mb_per_s\":%.3f,\"consume_error\":", el > 0 ? F.got / el : 0.0,
           el > 0 ? bytes / el / 1e6 : 0.0);
    json_str(stdout, ok ? "" : err);
    printf(",\"e2e_latency\":null,\"fetch_requests\":%lld,\"fetch_wire_bytes\":%lld,\"fetch_batches\":%lld}\n",
           F.requests, F.wire_bytes, F.batches);
    fflush(stdout);
}

/* Fail with the counters so far in the usual JSON line. */
static void fetch_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    print_fetch(0, buf);
    fprintf(stderr, "loadgen: %s\n", buf);
    exit(1);
}

static void rd_need(rd_t *r, size_t n, const char *what) {
    if ((size_t)(r->end - r->p) < n) fetch_fail("malformed %s response: truncated at %s", r->api, what);
}
static int8_t rd_i8(rd_t *r, const char *what) {
    rd_need(r, 1, what);
    return (int8_t)*r->p++;
}
static int16_t rd_i16(rd_t *r, const char *what) {
    rd_need(r, 2, what);
    int16_t v = (int16_t)be16(r->p);
    r->p += 2;
    return v;
}
static int32_t rd_i32(rd_t *r, const char *what) {
    rd_need(r, 4, what);
    int32_t v = (int32_t)be32(r->p);
    r->p += 4;
    return v;
}
static int64_t rd_i64(rd_t *r, const char *what) {
    rd_need(r, 8, what);
    int64_t v = (int64_t)be64(r->p);
    r->p += 8;
    return v;
}
/* A string (i16 length); returns its length, -1 for null, and points *s at it. */
static int rd_str(rd_t *r, const char **s, int nullable, const char *what) {
    int16_t n = rd_i16(r, what);
    if (n < -1 || (n == -1 && !nullable)) fetch_fail("malformed %s response: %s has length %d", r->api, what, n);
    *s = (const char *)r->p;
    if (n > 0) {
        rd_need(r, (size_t)n, what);
        r->p += n;
    }
    return n;
}
/* An array count: 0..the bytes left / min_item (-1 only where nullable). */
static int32_t rd_count(rd_t *r, size_t min_item, int nullable, const char *what) {
    int32_t n = rd_i32(r, what);
    if (n < -1 || (n == -1 && !nullable) || (n > 0 && (size_t)n > (size_t)(r->end - r->p) / min_item))
        fetch_fail("malformed %s response: %s count %d", r->api, what, n);
    return n;
}

static int fetch_connect(void) {
    /* The first bootstrap address: HOST:PORT or [V6]:PORT. */
    char host[256];
    size_t n = strcspn(o.bootstrap, ",");
    if (n == 0 || n >= sizeof host) die("fetch: bad bootstrap %s", o.bootstrap);
    memcpy(host, o.bootstrap, n);
    host[n] = 0;
    char *colon = strrchr(host, ':');
    if (!colon) die("fetch: bootstrap %s has no :PORT", host);
    *colon = 0;
    const char *port = colon + 1, *h = host;
    if (host[0] == '[' && colon > host + 1 && colon[-1] == ']') {
        colon[-1] = 0;
        h = host + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(h, port, &hints, &res);
    if (rc) die("fetch: resolve %s:%s: %s", h, port, gai_strerror(rc));
    int fd = -1, err = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) die("fetch: connect %s:%s: %s", h, port, strerror(err));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A broker that stops answering fails the run instead of hanging it
     * (max_wait_ms is 500, so a healthy broker answers well within this). */
    double to = o.max_seconds + 5 < 30 ? o.max_seconds + 5 : 30;
    F.timeout_s = to;
    struct timeval tv = {.tv_sec = (time_t)to, .tv_usec = (suseconds_t)((to - (double)(time_t)to) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static void fetch_recv(void *buf, size_t len, const char *what) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(F.fd, (char *)buf + got, len - got, MSG_WAITALL);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            fetch_fail("broker closed the connection while we read %s (%zu/%zu bytes; Fetch v4 unsupported?)", what,
                       got, len);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            fetch_fail("no %s from the broker within %.0f s (%zu/%zu bytes)", what, F.timeout_s, got, len);
        fetch_fail("recv %s: %s", what, strerror(errno));
    }
}

/* Request header v1 (api key, version, correlation id, client id) at p;
 * returns the end. */
static unsigned char *put_request_header(unsigned char *p, int api_key, int version, int32_t corr) {
    p = put16(p, api_key);
    p = put16(p, version);
    p = put32(p, corr);
    p = put16(p, (int)strlen(FETCH_CLIENT_ID));
    memcpy(p, FETCH_CLIENT_ID, strlen(FETCH_CLIENT_ID));
    return p + strlen(FETCH_CLIENT_ID);
}

/* Sends a whole request (size prefix included). */
static void fetch_send(const unsigned char *req, size_t rlen, const char *api) {
    for (size_t sent = 0; sent < rlen;) {
        ssize_t n = send(F.fd, req + sent, rlen - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fetch_fail("send %s request: %s", api, n < 0 ? strerror(errno) : "nothing sent");
        sent += (size_t)n;
    }
}

/* The Fetch v4 request for the current offsets, size prefix included. */
static size_t fetch_request(unsigned char *buf, int32_t corr) {
    size_t tlen = strlen(o.topic);
    unsigned char *p = put_request_header(buf + 4, 1, 4, corr); /* Fetch v4 */
    p = put32(p, -1);       /* replica_id */
    p = put32(p, 500);      /* max_wait_ms */
    p = put32(p, 1);        /* min_bytes */
    p = put32(p, 64 << 20); /* max_bytes */
    *p++ = 0;               /* isolation_level: read uncommitted */
    p = put32(p, 1);        /* topics */
    p = put16(p, (int)tlen);
    memcpy(p, o.topic, tlen);
    p += tlen;
    p = put32(p, o.partitions);
    for (int i = 0; i < o.partitions; i++) {
        p = put32(p, i);
        p = put64(p, F.offset[i]);
        p = put32(p, 8 << 20); /* partition_max_bytes */
    }
    size_t len = (size_t)(p - buf);
    put32(buf, (int32_t)(len - 4));
    return len;
}

/* Verify one batch at b (avail bytes of the record set from there, at least
 * 61): returns its size, or 0 when it is not complete within avail (a trailing
 * partial batch). Counts its records if they are at or past the fetch offset
 * and moves *next past it. */
static size_t fetch_batch(int part, const unsigned char *b, size_t avail, int64_t *next, long long *n) {
    int64_t base = (int64_t)be64(b);
    int32_t blen = (int32_t)be32(b + 8);
    if (blen < 49) fetch_fail("partition %d: batch at offset %" PRId64 " has batch_length %d", part, base, blen);
    if ((size_t)blen + 12 > avail) return 0;
    if ((int8_t)b[16] != 2)
        fetch_fail("partition %d: batch at offset %" PRId64 " has magic %d, not 2", part, base, (int8_t)b[16]);
    uint32_t want = be32(b + 17), crc = crc32c(0, b + 21, (size_t)blen - 9);
    if (crc != want)
        fetch_fail("partition %d: CRC-32C mismatch in the batch at offset %" PRId64 " (%d bytes): header %08x, "
                   "computed %08x",
                   part, base, blen + 12, want, crc);
    int32_t last_delta = (int32_t)be32(b + 23), count = (int32_t)be32(b + 57);
    if (last_delta < 0 || count < 0)
        fetch_fail("partition %d: batch at offset %" PRId64 " has last_offset_delta %d, records_count %d", part,
                   base, last_delta, count);
    if (base >= F.offset[part]) *n += count;
    if (base + last_delta + 1 > *next) *next = base + last_delta + 1;
    F.batches++;
    return 12 + (size_t)blen;
}

/* A Fetch v4 response parsed while it arrives: each batch is verified as soon
 * as its last byte is in, so checking overlaps the broker's sending (as a
 * client that parses only whole responses cannot). */
typedef struct {
    enum { FS_HEAD, FS_TOPIC, FS_PART, FS_RECORDS, FS_DONE } stage;
    size_t pos; /* next unparsed byte of the response */
    int32_t topics_left, parts_left;
    int part;
    size_t rec_end; /* end of the current partition's record set */
    int64_t next;   /* next offset of the current partition */
    long long n;    /* records counted */
} fstream_t;

/* Parse as far as the first have of the response's size bytes allow. */
static void fetch_advance(fstream_t *s, const unsigned char *buf, size_t have, size_t size, int32_t corr) {
    size_t tlen = strlen(o.topic);
    for (;;) {
        /* Counts are checked against the whole response (size), reads only
         * once the bytes are in (have). */
        rd_t r = {buf + s->pos, buf + size, "Fetch"};
        size_t left = have - s->pos;
        switch (s->stage) {
        case FS_HEAD: {
            if (left < 12) return;
            int32_t c = rd_i32(&r, "correlation_id");
            if (c != corr) fetch_fail("Fetch response has correlation_id %d, expected %d", c, corr);
            rd_i32(&r, "throttle_time_ms");
            s->topics_left = rd_count(&r, 6, 0, "topics");
            s->stage = s->topics_left ? FS_TOPIC : FS_DONE;
            break;
        }
        case FS_TOPIC: {
            if (left < 2) return;
            int16_t nl = (int16_t)be16(r.p);
            if (nl >= 0 && left < 2 + (size_t)nl + 4) return;
            const char *name;
            nl = (int16_t)rd_str(&r, &name, 0, "topic name");
            if ((size_t)nl != tlen || memcmp(name, o.topic, tlen) != 0)
                fetch_fail("Fetch response names topic %.*s, not %s", nl, name, o.topic);
            s->topics_left--;
            s->parts_left = rd_count(&r, 30, 0, "partitions");
            s->stage = s->parts_left ? FS_PART : (s->topics_left ? FS_TOPIC : FS_DONE);
            break;
        }
        case FS_PART: {
            if (left < 26) return;
            int32_t na = (int32_t)be32(r.p + 22);
            if (na > 0 && left < 26 + (size_t)na * 16 + 4) return;
            if (na <= 0 && left < 30) return;
            int32_t part = rd_i32(&r, "partition");
            int16_t ec = rd_i16(&r, "error_code");
            rd_i64(&r, "high_watermark");
            rd_i64(&r, "last_stable_offset");
            int32_t naborted = rd_count(&r, 16, 1, "aborted_transactions");
            if (naborted > 0) r.p += (size_t)naborted * 16; /* rd_count checked the room */
            int32_t rlen = rd_i32(&r, "records length");
            if (rlen < -1) fetch_fail("malformed Fetch response: records length %d", rlen);
            if (rlen > 0) rd_need(&r, (size_t)rlen, "records");
            if (part < 0 || part >= o.partitions)
                fetch_fail("Fetch response has partition %d, asked for 0..%d", part, o.partitions - 1);
            if (ec)
                fetch_fail("partition %d of %s: broker error %d (%s)", part, o.topic, ec,
                           rd_kafka_err2name((rd_kafka_resp_err_t)ec));
            s->parts_left--;
            s->part = part;
            s->next = F.offset[part];
            s->rec_end = (size_t)(r.p - buf) + (size_t)(rlen > 0 ? rlen : 0);
            s->stage = FS_RECORDS;
            break;
        }
        case FS_RECORDS: {
            size_t avail_end = have < s->rec_end ? have : s->rec_end;
            size_t step = 1;
            while (avail_end - s->pos >= 61 &&
                   (step = fetch_batch(s->part, buf + s->pos, avail_end - s->pos, &s->next, &s->n)) > 0)
                s->pos += step;
            if (have < s->rec_end) return; /* more of this record set to come */
            /* Complete: what is left is a trailing partial batch (or nothing). */
            F.offset[s->part] = s->next;
            s->pos = s->rec_end;
            s->stage = s->parts_left ? FS_PART : (s->topics_left ? FS_TOPIC : FS_DONE);
            break;
        }
        case FS_DONE:
            return;
        }
        s->pos = (size_t)(r.p - buf) > s->pos ? (size_t)(r.p - buf) : s->pos;
    }
}

/* Sends a Fetch request and reads its response, verifying batches as they
 * arrive; returns the records counted and the response size in *size. */
static long long fetch_streamed(const unsigned char *req, size_t rlen, unsigned char *buf, size_t cap, int32_t corr,
                                size_t *size_out) {
    fetch_send(req, rlen, "Fetch");
    unsigned char sz[4];
    fetch_recv(sz, 4, "response size");
    int32_t size = (int32_t)be32(sz);
    if (size < 4 || (size_t)size > cap) fetch_fail("Fetch response size %d is outside 4..%zu bytes", size, cap);
    fstream_t s = {.stage = FS_HEAD};
    size_t have = 0;
    while (have < (size_t)size) {
        size_t ask = (size_t)size - have;
        if (ask > FETCH_RECV_STEP) ask = FETCH_RECV_STEP;
        ssize_t n = recv(F.fd, buf + have, ask, 0);
        if (n > 0) {
            have += (size_t)n;
            fetch_advance(&s, buf, have, (size_t)size, corr);
            continue;
        }
        if (n == 0) fetch_fail("broker closed the connection while we read a Fetch response (%zu/%d bytes)", have, size);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            fetch_fail("no Fetch response from the broker within %.0f s (%zu/%d bytes)", F.timeout_s, have, size);
        fetch_fail("recv Fetch response: %s", strerror(errno));
    }
    if (s.stage != FS_DONE) fetch_fail("malformed Fetch response: it ends inside its partitions");
    if (s.pos != (size_t)size) fetch_fail("malformed Fetch response: %zu trailing bytes", (size_t)size - s.pos);
    *size_out = (size_t)size;
    return s.n;
}

/* Sends a request (size prefix included) and reads its response into buf;
 * returns the response size. */
static size_t fetch_roundtrip(const unsigned char *req, size_t rlen, unsigned char **buf, size_t *cap,
                              const char *api) {
    fetch_send(req, rlen, api);
    unsigned char sz[4];
    fetch_recv(sz, 4, "response size");
    int32_t size = (int32_t)be32(sz);
    if (size < 4 || size > FETCH_MAX_RESPONSE)
        fetch_fail("%s response size %d is outside 4..%d bytes", api, size, FETCH_MAX_RESPONSE);
    if ((size_t)size > *cap) {
        while (*cap < (size_t)size) *cap *= 2;
        free(*buf);
        *buf = malloc(*cap);
        if (!*buf) fetch_fail("out of memory for a %d-byte %s response", size, api);
    }
    fetch_recv(*buf, (size_t)size, "response body");
    return (size_t)size;
}

/* Metadata v4 for the topic (no auto-creation): 0 when partitions 0..P-1
 * all have a leader; else a reason in why, and 1 if it may pass with time
 * (a leader election), -1 if not. Fetch alone cannot tell: some brokers
 * answer a fetch from a topic they do not have with no error and no data. */
static int fetch_metadata(const unsigned char *buf, size_t len, int32_t corr, char *why, size_t whylen) {
    rd_t r = {buf, buf + len, "Metadata"};
    const char *s;
    int32_t c = rd_i32(&r, "correlation_id");
    if (c != corr) fetch_fail("Metadata response has correlation_id %d, expected %d", c, corr);
    rd_i32(&r, "throttle_time_ms");
    int32_t nbrokers = rd_count(&r, 12, 0, "brokers");
    for (int32_t i = 0; i < nbrokers; i++) {
        rd_i32(&r, "node_id");
        rd_str(&r, &s, 0, "host");
        rd_i32(&r, "port");
        rd_str(&r, &s, 1, "rack");
    }
    rd_str(&r, &s, 1, "cluster_id");
    rd_i32(&r, "controller_id");
    int32_t ntopics = rd_count(&r, 9, 0, "topics");
    size_t tlen = strlen(o.topic);
    int found = 0, led = 0, retry = 0, nparts = 0;
    for (int32_t t = 0; t < ntopics; t++) {
        int16_t ec = rd_i16(&r, "topic error_code");
        const char *name;
        int nl = rd_str(&r, &name, 0, "topic name");
        rd_i8(&r, "is_internal");
        int ours = (size_t)nl == tlen && memcmp(name, o.topic, tlen) == 0;
        if (ours) {
            found = 1;
            if (ec) {
                snprintf(why, whylen, "broker error %d (%s) in Metadata", ec,
                         rd_kafka_err2name((rd_kafka_resp_err_t)ec));
                return ec == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ? 1 : -1;
            }
        }
        int32_t np = rd_count(&r, 18, 0, "partitions");
        for (int32_t i = 0; i < np; i++) {
            int16_t pec = rd_i16(&r, "partition error_code");
            int32_t idx = rd_i32(&r, "partition_index"), leader = rd_i32(&r, "leader_id");
            int32_t nrep = rd_count(&r, 4, 0, "replica_nodes");
            r.p += (size_t)nrep * 4;
            int32_t nisr = rd_count(&r, 4, 0, "isr_nodes");
            r.p += (size_t)nisr * 4;
            if (!ours) continue;
            nparts++;
            if (idx < 0 || idx >= o.partitions) continue;
            if (!pec && leader >= 0) led++;
            else retry = 1;
        }
    }
    if (!found) {
        snprintf(why, whylen, "not in the Metadata response");
        return -1;
    }
    if (led == o.partitions) return 0;
    snprintf(why, whylen, "%d partitions in Metadata, %d of partitions 0..%d with a leader", nparts, led,
             o.partitions - 1);
    return retry ? 1 : -1;
}

static int cmd_fetch(void) {
    if (!o.topic) die("fetch needs -t TOPIC");
    if (strlen(o.topic) > 32767) die("topic name too long");
    if (o.partitions < 1 || o.partitions > 100000) die("fetch: bad -p %d", o.partitions);
    crc32c_init();
    F.offset = calloc((size_t)o.partitions, sizeof *F.offset);
    unsigned char *req = malloc(64 + strlen(FETCH_CLIENT_ID) + strlen(o.topic) + 16 * (size_t)o.partitions);
    /* Room for a full response (max_bytes, plus a first batch that may
     * exceed the limits), faulted in before the clock starts. */
    size_t cap = (64 << 20) + (8 << 20);
    unsigned char *buf = malloc(cap);
    if (!F.offset || !req || !buf) die("out of memory");
    memset(buf, 1, cap); /* not 0: malloc + memset 0 may become an untouched calloc */
    F.fd = fetch_connect();

    /* The topic must exist with partitions 0..P-1 led (waiting out an
     * election for up to 10 s) before the clock starts. */
    int64_t until = now_ns() + (int64_t)((o.max_seconds < 10 ? o.max_seconds : 10) * 1e9);
    for (int32_t corr = 1;; corr++) {
        size_t tlen = strlen(o.topic);
        unsigned char *p = put_request_header(req + 4, 3, 4, corr); /* Metadata v4 */
        p = put32(p, 1); /* topics */
        p = put16(p, (int)tlen);
        memcpy(p, o.topic, tlen);
        p += tlen;
        *p++ = 0; /* allow_auto_topic_creation */
        put32(req, (int32_t)(p - req - 4));
        size_t size = fetch_roundtrip(req, (size_t)(p - req), &buf, &cap, "Metadata");
        char why[256];
        int rc = fetch_metadata(buf, size, corr, why, sizeof why);
        if (rc == 0) break;
        if (rc < 0 || now_ns() > until) fetch_fail("topic %s: %s", o.topic, why);
        usleep(100000);
    }

    /* -k PASSES: read the N records PASSES times (back to offset 0 after
     * each pass), so that a fast run lasts long enough to time. */
    F.passes = o.passes > 1 ? o.passes : 1;
    F.want = o.records * F.passes;
    F.pass_end = o.records;
    F.t0 = now_ns();
    F.deadline = F.t0 + (int64_t)(o.max_seconds * 1e9);
    for (int32_t corr = 1000; F.got < F.want && now_ns() < F.deadline; corr++) {
        size_t size = 0;
        long long n = fetch_streamed(req, fetch_request(req, corr), buf, cap, corr, &size);
        F.requests++;
        F.wire_bytes += 4 + (long long)size;
        if (n > 0) {
            F.got += n;
            F.t1 = now_ns();
        }
        if (F.got >= F.pass_end && F.got < F.want) {
            memset(F.offset, 0, (size_t)o.partitions * sizeof *F.offset);
            F.pass_end += o.records;
        }
    }
    print_fetch(1, NULL);
    close(F.fd);
    free(buf);
    free(req);
    free(F.offset);
    return 0;
}

/* -------------------------------------------------------------------- admin */

static int admin_result(rd_kafka_t *rk, rd_kafka_queue_t *q, rd_kafka_event_type_t want, char *why, size_t whylen) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (o.max_seconds < 600 ? (int)(o.max_seconds * 1000) : 60000) + 5000);
    (void)rk;
    if (!ev) {
        snprintf(why, whylen, "admin request timed out");
        return -1;
    }
    int rc = 0;
    if (rd_kafka_event_error(ev)) {
        snprintf(why, whylen, "%s", rd_kafka_event_error_string(ev));
        rc = -1;
    } else if (rd_kafka_event_type(ev) == want) {
        const rd_kafka_topic_result_t **res;
        size_t n = 0;
        if (want == RD_KAFKA_EVENT_CREATETOPICS_RESULT)
            res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        else
            res = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                const char *s = rd_kafka_topic_result_error_string(res[i]);
                snprintf(why, whylen, "%s: %s", rd_kafka_err2name(e), s ? s : "");
                rc = -1;
            }
        }
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

static int cmd_topic(int create) {
    if (!o.topic) die("needs -t TOPIC");
    rd_kafka_conf_t *c = base_conf();
    char err[512], why[512] = "";
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) die("admin client: %s", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, create ? RD_KAFKA_ADMIN_OP_CREATETOPICS : RD_KAFKA_ADMIN_OP_DELETETOPICS);
    int admin_ms = o.max_seconds < 600 ? (int)(o.max_seconds * 1000) : 60000;
    rd_kafka_AdminOptions_set_operation_timeout(ao, admin_ms / 2, err, sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(ao, admin_ms, err, sizeof err);
    int64_t t0 = now_ns();
    int rc;
    if (create) {
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(o.topic, o.partitions, o.rf, err, sizeof err);
        if (!nt) die("NewTopic: %s", err);
        rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
        rc = admin_result(rk, q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, why, sizeof why);
        rd_kafka_NewTopic_destroy(nt);
        if (rc == 0 && !wait_topic(rk, o.topic, o.partitions, o.max_seconds < 600 ? o.max_seconds : 60, why, sizeof why))
            rc = -1;
    } else {
        rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(o.topic);
        rd_kafka_DeleteTopics(rk, &dt, 1, ao, q);
        rc = admin_result(rk, q, RD_KAFKA_EVENT_DELETETOPICS_RESULT, why, sizeof why);
        rd_kafka_DeleteTopic_destroy(dt);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    if (rc) die("%s %s: %s", create ? "create" : "delete", o.topic, why);
    printf("{\"ok\":true,\"mode\":\"%s\",\"topic\":", create ? "topic-create" : "topic-delete");
    json_str(stdout, o.topic);
    printf(",\"partitions\":%d,\"replication_factor\":%d,\"elapsed_s\":%.3f}\n", o.partitions, o.rf,
           (double)(now_ns() - t0) / 1e9);
    return 0;
}

/* Brokers in the cluster, and for -t TOPIC the smallest replica and ISR
 * counts over its partitions. */
static int cmd_metadata(void) {
    rd_kafka_conf_t *c = base_conf();
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) die("client: %s", err);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, o.max_seconds < 600 ? (int)(o.max_seconds * 1000) : 10000);
    if (e) die("metadata: %s", rd_kafka_err2str(e));
    int min_rep = -1, min_isr = -1, parts = -1;
    for (int i = 0; o.topic && i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        if (strcmp(t->topic, o.topic) != 0) continue;
        parts = t->partition_cnt;
        for (int p = 0; p < t->partition_cnt; p++) {
            int r = t->partitions[p].replica_cnt, s = t->partitions[p].isr_cnt;
            if (min_rep < 0 || r < min_rep) min_rep = r;
            if (min_isr < 0 || s < min_isr) min_isr = s;
        }
    }
    printf("{\"ok\":true,\"mode\":\"metadata\",\"brokers\":%d,\"partitions\":%d,\"min_replicas\":%d,\"min_isr\":%d}\n",
           md->broker_cnt, parts, min_rep, min_isr);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return 0;
}

/* ------------------------------------------------------------ machine limits */

#define TCP_BUF (1 << 20)

static void *tcp_sender(void *arg) {
    int fd = *(int *)arg;
    char *buf = malloc(TCP_BUF);
    memset(buf, 'x', TCP_BUF);
    for (;;) {
        ssize_t n = send(fd, buf, TCP_BUF, MSG_NOSIGNAL);
        if (n <= 0) break;
    }
    free(buf);
    return NULL;
}

static int cmd_tcp(void) {
    double secs = o.max_seconds < 600 ? o.max_seconds : 3;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (struct sockaddr *)&a, &al))
        die("tcp listen: %s", strerror(errno));
    int cs = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cs, (struct sockaddr *)&a, sizeof a)) die("tcp connect: %s", strerror(errno));
    int ss = accept(ls, NULL, NULL);
    pthread_t th;
    pthread_create(&th, NULL, tcp_sender, &cs);
    char *buf = malloc(TCP_BUF);
    long long total = 0;
    /* one second of warm-up, then measure */
    int64_t warm = now_ns() + (int64_t)1e9, t0 = 0, end = 0;
    for (;;) {
        ssize_t n = recv(ss, buf, TCP_BUF, 0);
        if (n <= 0) die("tcp recv: %s", strerror(errno));
        int64_t t = now_ns();
        if (!t0) {
            if (t >= warm) {
                t0 = t;
                end = t0 + (int64_t)(secs * 1e9);
            }
            continue;
        }
        total += n;
        if (t >= end) {
            double el = (double)(t - t0) / 1e9;
            printf("{\"ok\":true,\"mode\":\"tcp\",\"bytes\":%lld,\"elapsed_s\":%.3f,\"mb_per_s\":%.1f}\n", total, el,
                   total / el / 1e6);
            fflush(stdout);
            break;
        }
    }
    shutdown(ss, SHUT_RDWR);
    close(ss);
    pthread_join(th, NULL);
    close(cs);
    close(ls);
    return 0;
}

static int cmd_disk(void) {
    if (!o.file) die("disk needs -f FILE");
    const size_t bs = 1 << 20;
    char *buf = aligned_alloc(4096, bs);
    uint64_t x = 1;
    for (size_t i = 0; i < bs / 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ((uint64_t *)buf)[i] = x;
    }
    int fd = open(o.file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open %s: %s", o.file, strerror(errno));
    int64_t t0 = now_ns();
    for (long i = 0; i < o.mib; i++) {
        buf[0] = (char)i;
        if (write(fd, buf, bs) != (ssize_t)bs) die("write: %s", strerror(errno));
    }
    int64_t t_written = now_ns();
    if (fdatasync(fd)) die("fdatasync: %s", strerror(errno));
    int64_t t1 = now_ns();
    close(fd);
    unlink(o.file);
    double el = (double)(t1 - t0) / 1e9;
    double bytes = (double)o.mib * (double)bs;
    printf("{\"ok\":true,\"mode\":\"disk\",\"bytes\":%.0f,\"elapsed_s\":%.3f,\"write_s\":%.3f,\"mb_per_s\":%.1f}\n",
           bytes, el, (double)(t_written - t0) / 1e9, bytes / el / 1e6);
    return 0;
}

/* fsync + fadvise(DONTNEED) each regular file under dir; count resident bytes. */
static long long resident_bytes(int fd, off_t size) {
    if (size <= 0) return 0;
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return 0;
    long pg = sysconf(_SC_PAGESIZE);
    size_t pages = ((size_t)size + (size_t)pg - 1) / (size_t)pg;
    unsigned char *v = malloc(pages);
    long long res = 0;
    if (mincore(m, (size_t)size, v) == 0)
        for (size_t i = 0; i < pages; i++) res += (v[i] & 1) ? pg : 0;
    free(v);
    munmap(m, (size_t)size);
    return res;
}

static long long ev_files, ev_bytes, ev_before, ev_after;

static void evict_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            evict_dir(path);
            continue;
        }
        if (!S_ISREG(st.st_mode)) continue;
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ev_files++;
        ev_bytes += st.st_size;
        ev_before += resident_bytes(fd, st.st_size);
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ev_after += resident_bytes(fd, st.st_size);
        close(fd);
    }
    closedir(d);
}

static int cmd_evict(const char *dir) {
    evict_dir(dir);
    printf("{\"ok\":true,\"mode\":\"evict\",\"files\":%lld,\"bytes\":%lld,\"resident_before\":%lld,"
           "\"resident_after\":%lld}\n",
           ev_files, ev_bytes, ev_before, ev_after);
    return 0;
}

/* --------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: loadgen produce|consume|fetch|pc|topic-create|topic-delete|tcp|disk|evict [options]\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "version")) {
        printf("{\"ok\":true,\"mode\":\"version\",\"librdkafka\":\"%s\"}\n", rd_kafka_version_str());
        return 0;
    }
    if (!strcmp(mode, "evict")) {
        if (argc < 3) die("evict DIR");
        return cmd_evict(argv[2]);
    }
    optind = 2;
    int ch;
    while ((ch = getopt(argc, argv, "b:t:n:s:a:z:r:d:p:R:f:m:l:k:T:X:")) != -1) {
        switch (ch) {
        case 'b': o.bootstrap = optarg; break;
        case 't': o.topic = optarg; break;
        case 'n': o.records = atoll(optarg); break;
        case 's': o.size = atoi(optarg); break;
        case 'a': o.acks = optarg; break;
        case 'z': o.compression = optarg; break;
        case 'r': o.rate = atof(optarg); break;
        case 'd': o.max_seconds = atof(optarg); break;
        case 'p': o.partitions = atoi(optarg); break;
        case 'R': o.rf = atoi(optarg); break;
        case 'f': o.file = optarg; break;
        case 'm': o.mib = atol(optarg); break;
        case 'l': o.linger = optarg; break;
        case 'k': o.passes = atoi(optarg); break;
        case 'T': o.txn = atoll(optarg); break;
        case 'X':
            if (o.nextra < 64) o.extra[o.nextra++] = optarg;
            break;
        default: return 2;
        }
    }
    if (o.size < 16) o.size = 16;
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(mode, "produce")) return cmd_produce();
    if (!strcmp(mode, "consume")) return cmd_consume();
    if (!strcmp(mode, "fetch")) return cmd_fetch();
    if (!strcmp(mode, "pc")) return cmd_pc();
    if (!strcmp(mode, "topic-create")) return cmd_topic(1);
    if (!strcmp(mode, "topic-delete")) return cmd_topic(0);
    if (!strcmp(mode, "metadata")) return cmd_metadata();
    if (!strcmp(mode, "tcp")) return cmd_tcp();
    if (!strcmp(mode, "disk")) return cmd_disk();
    die("unknown mode %s", mode);
    return 2;
}
