/* The merges of txsim_fcm's nested dissection on the CPU: txsim_merge, one system at a time,
   and txsim_leaves (below), the first levels block by block; and txsim_terminate (at the end),
   the terminations of the arrays.

   txsim_merge(a, offs_a, pa, sa, a0, ka, b, offs_b, pb, sb, b0, kb, e, out, info, count,
   threads) merges, for each of `count` systems m, the subdomain matrix A (pa x pa, row-major,
   at a + offs_a[m]) with B (pb x pb, at b + offs_b[m]) along their shared side of e ports, and
   eliminates the shared ports. Ports are numbered cyclically (ring order): A's shared side is
   ports sa, sa+1, ... (mod pa) and B's the same nodes the other way round, ports
   sb+e-1, ..., sb (mod pb); A keeps ka ports from a0 and B keeps kb ports from b0. With
   ek = [A[shared, kept_a], B[shared reversed, kept_b]] (e x K, K = ka + kb) and
   ee = A[shared, shared] + B[shared reversed, shared reversed]:

       out[m] = blockdiag(A[kept_a, kept_a], B[kept_b, kept_b]) - ek^T ee^-1 ek   (K x K)
       info[m] = 0, or 1 where a pivot of ee was not positive (or NaN): out[m] is then not
                 meaningful.

   With b == NULL (kb = 0) it eliminates the e ports from sa of A alone (an open side).

   Each system is gathered into a local buffer that stays in the cache, as one augmented
   matrix [ee | ek] (e rows), on which an upper Cholesky factorisation ee = U^T U runs row by
   row, carrying W = U^-T ek along (the same recurrence: row j of both needs rows 0..j-1), with
   the updates vectorised along the rows and blocked in registers. The product W^T W is
   symmetric: only the 6 x 8 register tiles (12 accumulators of 4 doubles: no spills with the
   16 vector registers of AVX2) that reach the diagonal or lie above it are computed, then
   mirrored in 4 x 4 blocks transposed in registers. Vectors are GCC/Clang vector extensions;
   memcpy loads and stores carry no alignment assumption. Built with OpenMP, the systems of a
   call are shared among threads (each with its own buffer); without, the pragmas are
   ignored. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef double v4 __attribute__((vector_size(32)));

static inline v4 load(const double *p) { v4 x; memcpy(&x, p, sizeof x); return x; }
static inline void store(double *p, v4 x) { memcpy(p, &x, sizeof x); }
static inline v4 splat(double x) { return (v4){x, x, x, x}; }
#if defined(__clang__) || __GNUC__ >= 12
#define SHUFFLE(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
typedef long long m4 __attribute__((vector_size(32)));
#define SHUFFLE(a, b, i, j, k, l) __builtin_shuffle(a, b, (m4){i, j, k, l})
#endif
static inline long round_up(long n, long to) { return (n + to - 1) / to * to; }

/* Port p + i of a ring of `period` ports, for 0 <= p < period and 0 <= i < period. */
static inline long ring(long p, long i, long period) {
    long q = p + i;
    return q >= period ? q - period : q;
}

/* dst[c] = src[ring(c0, c)] for c < n: the cyclic run as at most two contiguous pieces. */
static inline void copy_run(double *dst, const double *src, long c0, long n, long period) {
    long first = period - c0 < n ? period - c0 : n;
    for (long c = 0; c < first; c++) dst[c] = src[c0 + c];
    for (long c = first; c < n; c++) dst[c] = src[c - first];
}

/* dst[c] += src[ring(c0, n - 1 - c)] for c < n: the cyclic run, reversed, added. */
static inline void add_run_reversed(double *dst, const double *src, long c0, long n,
                                    long period) {
    long first = period - c0 < n ? period - c0 : n; /* src[c0 ..] before the wrap */
    for (long c = 0; c < n - first; c++) dst[c] += src[n - first - 1 - c];
    for (long c = n - first; c < n; c++) dst[c] += src[c0 + n - 1 - c];
}

/* The augmented system of one merge, rows 0..e-1 with stride ld: columns 0..e-1 ee, columns
   w0..w0+K-1 ek, zeros elsewhere. */
static void gather(double *s, long ld, long w0, const double *a, long pa, long sa, long a0,
                   long ka, const double *b, long pb, long sb, long b0, long kb, long e) {
    long k = ka + kb;
    for (long i = 0; i < e; i++) {
        double *row = s + i * ld;
        const double *ar = a + ring(sa, i, pa) * pa;
        copy_run(row, ar, sa, e, pa);
        for (long c = e; c < w0; c++) row[c] = 0.0;
        copy_run(row + w0, ar, a0, ka, pa);
        if (b) {
            const double *br = b + ring(sb, e - 1 - i, pb) * pb;
            add_run_reversed(row, br, sb, e, pb);
            copy_run(row + w0 + ka, br, b0, kb, pb);
        }
        for (long c = w0 + k; c < ld; c++) row[c] = 0.0;
    }
}

/* row[c] -= sum_q s[q][j] * s[q][c] over rows q < j, for columns c from `from` (a multiple of
   4) to ld: the update of row j by the finished rows above it, 8 vectors at a time. */
static void update_row(double *s, long ld, long j, long from) {
    double *row = s + j * ld;
    long c = from;
    for (; c + 32 <= ld; c += 32) {
        v4 x[8];
        for (int t = 0; t < 8; t++) x[t] = load(row + c + 4 * t);
        for (long q = 0; q < j; q++) {
            const double *sq = s + q * ld;
            v4 u = splat(sq[j]);
            for (int t = 0; t < 8; t++) x[t] -= u * load(sq + c + 4 * t);
        }
        for (int t = 0; t < 8; t++) store(row + c + 4 * t, x[t]);
    }
    for (; c < ld; c += 4) {
        v4 x = load(row + c);
        for (long q = 0; q < j; q++) x -= splat(s[q * ld + j]) * load(s + q * ld + c);
        store(row + c, x);
    }
}

/* ee = U^T U (U in the upper triangle of columns 0..e-1) and W = U^-T ek (in place); returns
   1 if a pivot was not positive (it is then taken as 1 so that the rest stays finite). */
static int factor(double *s, long ld, long e) {
    int failed = 0;
    for (long j = 0; j < e; j++) {
        long from = j & ~3L;
        update_row(s, ld, j, from);
        double *row = s + j * ld;
        double d = row[j];
        if (!(d > 0)) {
            failed = 1;
            d = 1.0;
        }
        d = sqrt(d);
        v4 inv = splat(1.0 / d);
        for (long c = from; c < ld; c += 4) store(row + c, load(row + c) * inv);
        row[j] = d;
    }
    return failed;
}

/* out[u + t][v + c] = -sum_q w[q][u + t] w[q][v + c] for t < 6, c < 8, those inside K x K. */
static void tile(const double *w, long ld, long e, double *out, long k, long u, long v) {
    v4 s[6][2] = {{{0}}};
    for (long q = 0; q < e; q++) {
        const double *wq = w + q * ld;
        v4 x0 = load(wq + v), x1 = load(wq + v + 4);
        for (int t = 0; t < 6; t++) {
            v4 b = splat(wq[u + t]);
            s[t][0] += b * x0;
            s[t][1] += b * x1;
        }
    }
    if (u + 6 <= k && v + 8 <= k) {
        for (int t = 0; t < 6; t++) {
            store(out + (u + t) * k + v, -s[t][0]);
            store(out + (u + t) * k + v + 4, -s[t][1]);
        }
        return;
    }
    for (int t = 0; t < 6 && u + t < k; t++) {
        double values[8];
        store(values, -s[t][0]);
        store(values + 4, -s[t][1]);
        for (long c = 0; c < 8 && v + c < k; c++) out[(u + t) * k + v + c] = values[c];
    }
}

/* The columns c[0..3] of the 4 x 4 matrix whose rows are r[0..3]. */
static inline void transpose(const v4 r[4], v4 c[4]) {
    v4 t0 = SHUFFLE(r[0], r[1], 0, 4, 2, 6), t1 = SHUFFLE(r[0], r[1], 1, 5, 3, 7);
    v4 t2 = SHUFFLE(r[2], r[3], 0, 4, 2, 6), t3 = SHUFFLE(r[2], r[3], 1, 5, 3, 7);
    c[0] = SHUFFLE(t0, t2, 0, 1, 4, 5);
    c[1] = SHUFFLE(t1, t3, 0, 1, 4, 5);
    c[2] = SHUFFLE(t0, t2, 2, 3, 6, 7);
    c[3] = SHUFFLE(t1, t3, 2, 3, 6, 7);
}

/* The size x size block of out (K x K) from (r, c) written transposed at (c, r), size a
   multiple of 4. */
static inline void transpose_block(double *out, long k, long r, long c, long size) {
    for (long i = 0; i < size; i += 4)
        for (long j = 0; j < size; j += 4) {
            v4 rows[4], cols[4];
            for (int t = 0; t < 4; t++) rows[t] = load(out + (r + i + t) * k + c + j);
            transpose(rows, cols);
            for (int t = 0; t < 4; t++) store(out + (c + j + t) * k + r + i, cols[t]);
        }
}

/* out[r][c] = out[c][r] below the diagonal: 8 x 8 blocks (whole cache lines) transposed in
   registers, the diagonal blocks and the edges element by element. */
static void mirror(double *out, long k) {
    long whole = k & ~7L;
    for (long c = 0; c < whole; c += 8)
        for (long r = c + 8; r < whole; r += 8) transpose_block(out, k, c, r, 8);
    for (long r = 1; r < k; r++)
        for (long c = r < whole ? r & ~7L : 0; c < r; c++) out[r * k + c] = out[c * k + r];
}

/* out (K x K) = -W^T W, W the e x K block of s from column w0 (zero-padded to the right): the
   tiles that reach the diagonal or lie above it, then mirrored. */
static void symmetric_product(const double *s, long ld, long w0, long e, double *out, long k) {
    const double *w = s + w0;
    for (long u = 0; u < k; u += 6)
        for (long v = u & ~7L; v < k; v += 8) tile(w, ld, e, out, k, u, v);
    mirror(out, k);
}

/* out[r][c] += x[ring(x0, r)][ring(x0, c)] for r, c < n: a kept block, on the diagonal. */
static void add_kept(double *out, long k, const double *x, long period, long x0, long n) {
    for (long r = 0; r < n; r++) {
        const double *xr = x + ring(x0, r, period) * period;
        double *o = out + r * k;
        long first = period - x0 < n ? period - x0 : n;
        for (long c = 0; c < first; c++) o[c] += xr[x0 + c];
        for (long c = first; c < n; c++) o[c] += xr[c - first];
    }
}

/* Returns 0, or -1 if a working buffer could not be allocated (out is then not meaningful).
   With OpenMP, the systems are shared among `threads` threads where there are enough. */
int txsim_merge(const double *a, const int64_t *offs_a, long pa, long sa, long a0, long ka,
               const double *b, const int64_t *offs_b, long pb, long sb, long b0, long kb,
               long e, double *out, int32_t *info, long count, long threads) {
    long k = ka + kb;
    long w0 = round_up(e, 4);
    /* The tiles read W up to column round_up(k, 6) + 8 beyond w0: padded with zeros. */
    long ld = round_up(w0 + round_up(k, 6) + 8, 4);
    int failed = 0;
#pragma omp parallel num_threads(threads) if (count >= 2 * threads) reduction(| : failed)
    {
        double *s = aligned_alloc(64, round_up(e * ld * sizeof *s, 64));
        failed |= !s;
#pragma omp for schedule(static)
        for (long m = 0; m < count; m++) {
            if (!s) continue;
            const double *am = a + offs_a[m], *bm = b ? b + offs_b[m] : NULL;
            gather(s, ld, w0, am, pa, sa, a0, ka, bm, pb, sb, b0, kb, e);
            info[m] = factor(s, ld, e);
            double *om = out + m * k * k;
            symmetric_product(s, ld, w0, e, om, k);
            add_kept(om, k, am, pa, a0, ka);
            if (bm) add_kept(om + ka * k + ka, k, bm, pb, b0, kb);
        }
        free(s);
    }
    return failed ? -1 : 0;
}

/* ---- The first levels: blocks of h x w cells, LANES blocks at a time ----

   txsim_leaves(g, batch, rows, cols, h, w, program, levels, g_row, g_col, out, threads)
   computes the port admittance of every h x w block of cells of the arrays g (batch x rows x
   cols, contiguous, in siemens) by the first `levels` merges of the nested dissection, whose
   interfaces have a few nodes: out (batch x rows/h x cols/w x P x P, contiguous) receives them
   in the ring order that those merges leave. Row t of `program` (9 numbers) describes merge t:
   horizontal (1) or vertical (0), shared nodes e, ports p of each subdomain, and sa, a0, ka,
   sb, b0, kb as for txsim_merge. The leaves are the cells, with the ring L (left terminal),
   T (column node), R (row node), B (bottom terminal) and the admittance of the row segment on
   their left, the cell and the column segment below them.

   Such small systems are not worth a loop of their own: every value below is a vector of
   LANES numbers, one per block, so every operation works on LANES blocks at once, and all the
   levels of a group of blocks stay in the cache (vectors of 8 lanes were slower: without
   AVX-512, GCC splits them through memory). The shared nodes of a merge are eliminated one at
   a time from the shared rows; then every entry of the kept part is computed once, its kept
   value less all the rank-1 terms summed in registers, and written in both triangles. The
   result is gathered from the lanes by 4 x 4 transposes. No pivot is checked: with finite,
   non-negative cells (which the caller checks) every pivot is positive. */

#define LANES 4      /* blocks per vector */
#define MAX_SHARED 8 /* the most shared nodes of a merge here */

/* out[r][c] = out[c][r] = kept value - sum_q ek[q][r] inv[q] ek[q][c], for c >= r. */
static inline __attribute__((always_inline)) void kept_less_terms(
    const v4 *ek, const v4 *inv, const long *kept, const v4 *a, const v4 *b, long p, long ka,
    long k, long e, v4 *out) {
    for (long r = 0; r < k; r++) {
        v4 f[MAX_SHARED];
        for (long q = 0; q < e; q++) f[q] = ek[q * k + r] * inv[q];
        const v4 *own = r < ka ? a + kept[r] * p : b + kept[r] * p;
        long own_end = r < ka ? ka : k;
        for (long c = r; c < k; c++) {
            v4 v = c < own_end ? own[kept[c]] : splat(0.0);
            for (long q = 0; q < e; q++) v -= f[q] * ek[q * k + c];
            out[r * k + c] = v;
            out[c * k + r] = v;
        }
    }
}

/* One merge for LANES blocks: a and b are p x p matrices of vectors, out (K x K) gets
   blockdiag(a kept, b kept) - ek^T ee^-1 ek. The shared nodes are eliminated one at a time
   from ee and ek (e x e and e x K, scratch; kept: K indices, scratch); then each entry of the
   upper triangle of out is its kept value less the e rank-1 terms, summed in registers, and is
   written mirrored too. */
static void merge_lanes(const v4 *a, const v4 *b, long p, const int64_t *step, v4 *ee,
                        v4 *ek, long *kept, v4 *out) {
    long e = step[1], sa = step[3], a0 = step[4], ka = step[5];
    long sb = step[6], b0 = step[7], kb = step[8], k = ka + kb;
    for (long c = 0; c < ka; c++) kept[c] = ring(a0, c, p);
    for (long c = 0; c < kb; c++) kept[ka + c] = ring(b0, c, p);
    for (long i = 0; i < e; i++) {
        const v4 *ar = a + ring(sa, i, p) * p, *br = b + ring(sb, e - 1 - i, p) * p;
        for (long j = 0; j < e; j++)
            ee[i * e + j] = ar[ring(sa, j, p)] + br[ring(sb, e - 1 - j, p)];
        for (long c = 0; c < ka; c++) ek[i * k + c] = ar[kept[c]];
        for (long c = ka; c < k; c++) ek[i * k + c] = br[kept[c]];
    }
    v4 inv[MAX_SHARED];
    for (long q = 0; q < e; q++) {
        inv[q] = splat(1.0) / ee[q * e + q];
        for (long i = q + 1; i < e; i++) {
            v4 f = ee[i * e + q] * inv[q];
            for (long j = q + 1; j < e; j++) ee[i * e + j] -= f * ee[q * e + j];
            for (long c = 0; c < k; c++) ek[i * k + c] -= f * ek[q * k + c];
        }
    }
    switch (e) { /* the sums unrolled for the common sizes */
    case 1: kept_less_terms(ek, inv, kept, a, b, p, ka, k, 1, out); break;
    case 2: kept_less_terms(ek, inv, kept, a, b, p, ka, k, 2, out); break;
    case 4: kept_less_terms(ek, inv, kept, a, b, p, ka, k, 4, out); break;
    case 8: kept_less_terms(ek, inv, kept, a, b, p, ka, k, 8, out); break;
    default: kept_less_terms(ek, inv, kept, a, b, p, ka, k, e, out);
    }
}

/* The leaves of LANES blocks (first: the block index of lane 0; lanes past `count` repeat the
   last block): h x w matrices of 4 x 4, in ring order L, T, R, B. */
static void leaves(v4 *y, const double *g, long rows, long cols, long h, long w, long first,
                   long count, double g_row, double g_col) {
    long nr = rows / h, nc = cols / w;
    const double *corner[LANES]; /* each lane's block: its top left cell */
    for (int l = 0; l < LANES; l++) {
        long n = first + (l < count ? l : count - 1);
        long array = n / (nr * nc), r = n / nc % nr, c = n % nc;
        corner[l] = g + (array * rows + r * h) * cols + c * w;
    }
    for (long i = 0; i < h; i++)
        for (long j = 0; j < w; j++) {
            v4 cell;
            for (int l = 0; l < LANES; l++) cell[l] = corner[l][i * cols + j];
            v4 *m = y + (i * w + j) * 16;
            for (int t = 0; t < 16; t++) m[t] = splat(0.0);
            m[0 * 4 + 0] = splat(g_row);
            m[0 * 4 + 2] = m[2 * 4 + 0] = splat(-g_row);
            m[3 * 4 + 3] = splat(g_col);
            m[1 * 4 + 3] = m[3 * 4 + 1] = splat(-g_col);
            m[2 * 4 + 2] = cell + g_row;
            m[1 * 4 + 1] = cell + g_col;
            m[1 * 4 + 2] = m[2 * 4 + 1] = -cell;
        }
}

/* Returns 0, -1 if a working buffer could not be allocated (out is then not meaningful), or
   -2 if a merge shares more than MAX_SHARED nodes (nothing is written). With OpenMP, the
   groups of blocks are shared among `threads` threads where there are enough. */
int txsim_leaves(const double *g, long batch, long rows, long cols, long h, long w,
                 const int64_t *program, long levels, double g_row, double g_col, double *out,
                 long threads) {
    /* The largest level (subdomains x ports^2) and the largest merge's scratch. */
    long most = h * w * 16, scratch = 0, nr = h, nc = w, widest = 0;
    for (long t = 0; t < levels; t++) {
        const int64_t *step = program + 9 * t;
        long e = step[1], k = step[5] + step[8];
        if (e > MAX_SHARED) return -2;
        if (step[0]) nc /= 2;
        else nr /= 2;
        most = nr * nc * k * k > most ? nr * nc * k * k : most;
        scratch = e * e + e * k > scratch ? e * e + e * k : scratch;
        widest = k > widest ? k : widest;
    }
    long blocks = batch * (rows / h) * (cols / w), groups = (blocks + LANES - 1) / LANES;
    int failed = 0;
#pragma omp parallel num_threads(threads) if (groups >= 2 * threads) reduction(| : failed)
    {
        v4 *buf = aligned_alloc(64, round_up((2 * most + scratch) * sizeof(v4), 64));
        long *kept = malloc(widest * sizeof *kept);
        failed |= !buf || !kept;
#pragma omp for schedule(static)
        for (long group = 0; group < groups; group++) {
            if (!buf || !kept) continue;
            long first = group * LANES;
            long count = blocks - first < LANES ? blocks - first : LANES;
            v4 *y = buf, *z = buf + most, *ee = buf + 2 * most;
            leaves(y, g, rows, cols, h, w, first, count, g_row, g_col);
            long gr = h, gc = w, q = 4;
            for (long t = 0; t < levels; t++) {
                const int64_t *step = program + 9 * t;
                long e = step[1], k = step[5] + step[8];
                int horizontal = step[0] != 0;
                long mr = horizontal ? gr : gr / 2, mc = horizontal ? gc / 2 : gc;
                for (long r = 0; r < mr; r++)
                    for (long c = 0; c < mc; c++) {
                        long ia = horizontal ? r * gc + 2 * c : 2 * r * gc + c;
                        long ib = horizontal ? ia + 1 : ia + gc;
                        merge_lanes(y + ia * q * q, y + ib * q * q, q, step, ee, ee + e * e,
                                    kept, z + (r * mc + c) * k * k);
                    }
                v4 *swap = y;
                y = z;
                z = swap;
                gr = mr;
                gc = mc;
                q = k;
            }
            for (long i = 0; i < q * q; i += 4) {
                v4 lanes[4];
                transpose(y + i, lanes);
                for (long l = 0; l < count; l++) store(out + (first + l) * q * q + i, lanes[l]);
            }
        }
        free(buf);
        free(kept);
    }
    return failed ? -1 : 0;
}

/* ---- Terminations: the effective conductances of the terminated arrays ----

   txsim_terminate(y, count, n, m, r_source, r_sink, forward, out, info, threads): for each of
   `count` admittance matrices y (P x P, P = n + m; ports 0..n-1 the rows' left terminals, the
   others the columns' bottom terminals), with d the driven and s the sensed terminals (rows and
   columns forward, the other way backward) and, as in txsim_fcm.network.terminate,

       h = (I + r_sink Y_ss)^-1 Y_sd,   M = I + r_source (Y_dd - r_sink Y_ds h),   t = -M^-1 h^T

   out (n x m) receives t forward and t^T backward; info is 1 where a factorisation failed.
   Both systems are symmetric positive definite: each is factorised (as in txsim_merge, carrying
   its right-hand sides along), Y_ds h is the symmetric product W^T W of W = U^-T Y_sd, and the
   two solutions finish by back substitution. */

/* x[i] = (x[i] - sum_{q > i} u[i][q] x[q]) / u[i][i] for i = rows - 1 down to 0: U x = x in
   place, U upper (row stride ldu), the rows of x (stride ldx) `width` long, a multiple of 4. */
static void back_substitute(const double *u, long ldu, double *x, long ldx, long rows,
                            long width) {
    for (long i = rows - 1; i >= 0; i--) {
        double *row = x + i * ldx;
        const double *ui = u + i * ldu;
        v4 inv = splat(1.0 / ui[i]);
        long c = 0;
        for (; c + 32 <= width; c += 32) {
            v4 acc[8];
            for (int t = 0; t < 8; t++) acc[t] = load(row + c + 4 * t);
            for (long q = i + 1; q < rows; q++) {
                v4 f = splat(ui[q]);
                for (int t = 0; t < 8; t++) acc[t] -= f * load(x + q * ldx + c + 4 * t);
            }
            for (int t = 0; t < 8; t++) store(row + c + 4 * t, acc[t] * inv);
        }
        for (; c < width; c += 4) {
            v4 acc = load(row + c);
            for (long q = i + 1; q < rows; q++) acc -= splat(ui[q]) * load(x + q * ldx + c);
            store(row + c, acc * inv);
        }
    }
}

/* One termination; a (S x lda), p (D x D) and b (D x ldb) are scratch. Returns 1 if a
   factorisation failed. */
static int terminate_one(const double *y, long n, long m, double r_source, double r_sink,
                         int forward, double *a, long lda, double *p, double *b, long ldb,
                         double *out) {
    long size = n + m, d0 = forward ? 0 : n, s0 = forward ? n : 0;
    long nd = forward ? n : m, ns = forward ? m : n;
    long wa = round_up(ns, 4), wb = round_up(nd, 4);
    memset(a, 0, ns * lda * sizeof *a);
    for (long i = 0; i < ns; i++) {
        const double *yi = y + (s0 + i) * size;
        for (long c = 0; c < ns; c++) a[i * lda + c] = r_sink * yi[s0 + c];
        a[i * lda + i] += 1.0;
        for (long c = 0; c < nd; c++) a[i * lda + wa + c] = yi[d0 + c];
    }
    int failed = factor(a, lda, ns); /* U^T U = I + r_sink Y_ss; W = U^-T Y_sd */
    symmetric_product(a, lda, wa, ns, p, nd); /* p = -W^T W = -Y_ds h */
    back_substitute(a, lda, a + wa, lda, ns, round_up(nd, 4)); /* h = U^-1 W */
    memset(b, 0, nd * ldb * sizeof *b);
    for (long i = 0; i < nd; i++) {
        const double *yi = y + (d0 + i) * size;
        for (long c = 0; c < nd; c++)
            b[i * ldb + c] = r_source * (yi[d0 + c] + r_sink * p[i * nd + c]);
        b[i * ldb + i] += 1.0;
        for (long c = 0; c < ns; c++) b[i * ldb + wb + c] = a[c * lda + wa + i]; /* h^T */
    }
    failed |= factor(b, ldb, nd); /* U2^T U2 = M; Z = U2^-T h^T */
    back_substitute(b, ldb, b + wb, ldb, nd, round_up(ns, 4)); /* M^-1 h^T */
    for (long i = 0; i < nd; i++)
        for (long c = 0; c < ns; c++) {
            double value = -b[i * ldb + wb + c];
            if (forward) out[i * m + c] = value;
            else out[c * m + i] = value;
        }
    return failed;
}

/* Returns 0, or -1 if a working buffer could not be allocated (out is then not meaningful).
   With OpenMP, the arrays are shared among `threads` threads where there are enough. */
int txsim_terminate(const double *y, long count, long n, long m, double r_source,
                    double r_sink, long forward, double *out, int32_t *info, long threads) {
    long nd = forward ? n : m, ns = forward ? m : n;
    /* The symmetric product reads W up to round_up(nd, 6) + 8 columns beyond its start. */
    long lda = round_up(round_up(ns, 4) + round_up(nd, 6) + 8, 4);
    long ldb = round_up(round_up(nd, 4) + round_up(ns, 4), 4);
    long doubles = ns * lda + nd * nd + nd * ldb;
    int failed = 0;
#pragma omp parallel num_threads(threads) if (count >= 2 * threads) reduction(| : failed)
    {
        double *a = aligned_alloc(64, round_up(doubles * sizeof *a, 64));
        failed |= !a;
#pragma omp for schedule(static)
        for (long k = 0; k < count; k++) {
            if (!a) continue;
            info[k] = terminate_one(y + k * (n + m) * (n + m), n, m, r_source, r_sink,
                                    forward != 0, a, lda, a + ns * lda, a + ns * lda + nd * nd,
                                    ldb, out + k * n * m);
        }
        free(a);
    }
    return failed ? -1 : 0;
}
