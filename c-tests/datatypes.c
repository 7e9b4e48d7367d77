/* ranks: 2 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Derived datatypes: contiguous, vector, hvector, indexed, indexed_block,
 * struct, resized, subarray, dup; size/extent/true extent, envelope; send and
 * receive between different layouts; Pack/Unpack/Pack_size with MPI_PACKED;
 * Get_elements on a partial struct receive. */
#include "common.h"
#include <stddef.h>

struct rec {
    int id;
    double weight;
    char tag[3];
};

static const char *combiner_name(int c)
{
    if (c == MPI_COMBINER_NAMED)
        return "NAMED";
    if (c == MPI_COMBINER_CONTIGUOUS)
        return "CONTIGUOUS";
    if (c == MPI_COMBINER_VECTOR)
        return "VECTOR";
    if (c == MPI_COMBINER_HVECTOR)
        return "HVECTOR";
    if (c == MPI_COMBINER_INDEXED)
        return "INDEXED";
    if (c == MPI_COMBINER_INDEXED_BLOCK)
        return "INDEXED_BLOCK";
    if (c == MPI_COMBINER_STRUCT)
        return "STRUCT";
    if (c == MPI_COMBINER_RESIZED)
        return "RESIZED";
    if (c == MPI_COMBINER_SUBARRAY)
        return "SUBARRAY";
    if (c == MPI_COMBINER_DUP)
        return "DUP";
    return "other";
}

static void show_type(const char *what, MPI_Datatype t)
{
    int size, ni, na, nd, comb;
    MPI_Aint lb, ext, tlb, text;
    CK(MPI_Type_size(t, &size));
    CK(MPI_Type_get_extent(t, &lb, &ext));
    CK(MPI_Type_get_true_extent(t, &tlb, &text));
    CK(MPI_Type_get_envelope(t, &ni, &na, &nd, &comb));
    say("  %-10s size=%d lb=%ld extent=%ld true_lb=%ld true_extent=%ld combiner=%s", what, size,
        (long)lb, (long)ext, (long)tlb, (long)text, combiner_name(comb));
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    const MPI_Comm W = MPI_COMM_WORLD;
    char buf[256];
    MPI_Status st;
    int count;

    /* types */
    MPI_Datatype contig, column, hcol, idx, idxblk, rec_raw, rec_t, sub, dup;
    CK(MPI_Type_contiguous(5, MPI_INT, &contig));
    CK(MPI_Type_vector(4, 1, 5, MPI_INT, &column)); /* a column of a 4x5 int matrix */
    CK(MPI_Type_create_hvector(4, 2, 5 * (MPI_Aint)sizeof(int), MPI_INT, &hcol));
    int bl[3] = {2, 1, 3}, dp[3] = {0, 4, 9};
    CK(MPI_Type_indexed(3, bl, dp, MPI_INT, &idx));
    int dpb[3] = {1, 6, 11};
    CK(MPI_Type_create_indexed_block(3, 2, dpb, MPI_INT, &idxblk));
    int rbl[3] = {1, 1, 3};
    MPI_Aint rdisp[3] = {offsetof(struct rec, id), offsetof(struct rec, weight),
                         offsetof(struct rec, tag)};
    MPI_Datatype rtypes[3] = {MPI_INT, MPI_DOUBLE, MPI_CHAR};
    CK(MPI_Type_create_struct(3, rbl, rdisp, rtypes, &rec_raw));
    CK(MPI_Type_create_resized(rec_raw, 0, sizeof(struct rec), &rec_t));
    int sizes[2] = {6, 7}, subsizes[2] = {2, 3}, starts[2] = {1, 2};
    CK(MPI_Type_create_subarray(2, sizes, subsizes, starts, MPI_ORDER_C, MPI_INT, &sub));
    CK(MPI_Type_dup(column, &dup));
    MPI_Datatype all[] = {contig, column, hcol, idx, idxblk, rec_raw, rec_t, sub, dup};
    const char *names[] = {"contig", "vector", "hvector", "indexed", "idx_block",
                           "struct", "resized", "subarray", "dup"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CK(MPI_Type_commit(&all[i]));
    contig = all[0], column = all[1], hcol = all[2], idx = all[3], idxblk = all[4];
    rec_raw = all[5], rec_t = all[6], sub = all[7], dup = all[8];
    say("type properties:");
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        show_type(names[i], all[i]);

    /* matrix 4x5 on rank 0: m[i][j] = 10*i + j */
    int m[4][5], r[20];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            m[i][j] = 10 * i + j;

    /* column 2 -> 4 contiguous ints; and the reverse (contiguous into column) */
    if (rank == 0) {
        CK(MPI_Send(&m[0][2], 1, column, 1, 1, W));
        int c[4] = {-1, -2, -3, -4};
        CK(MPI_Send(c, 4, MPI_INT, 1, 2, W));
    } else {
        for (int i = 0; i < 20; i++)
            r[i] = 0;
        CK(MPI_Recv(r, 4, MPI_INT, 0, 1, W, &st));
        CK(MPI_Get_count(&st, MPI_INT, &count));
        CHECK(count == 4 && r[0] == 2 && r[3] == 32);
        say_all("vector column -> ints: %s", fmt_ints(buf, sizeof buf, r, 4));
        int mm[4][5];
        memset(mm, 0, sizeof mm);
        CK(MPI_Recv(&mm[0][4], 1, dup, 0, 2, W, &st));
        CK(MPI_Get_count(&st, dup, &count));
        CHECK(count == 1 && mm[0][4] == -1 && mm[3][4] == -4 && mm[3][3] == 0);
        say_all("ints -> dup(vector) column 4: %d %d %d %d", mm[0][4], mm[1][4], mm[2][4], mm[3][4]);
    }
    if (rank == 0) {
        say_all("-");
        say_all("-");
    }

    /* hvector (2 columns), indexed, indexed_block, contiguous */
    if (rank == 0) {
        CK(MPI_Send(&m[0][1], 1, hcol, 1, 3, W));
        CK(MPI_Send(m, 1, idx, 1, 4, W));
        CK(MPI_Send(m, 1, idxblk, 1, 5, W));
        CK(MPI_Send(&m[2][0], 2, contig, 1, 6, W));
    } else {
        CK(MPI_Recv(r, 8, MPI_INT, 0, 3, W, MPI_STATUS_IGNORE));
        say_all("hvector: %s", fmt_ints(buf, sizeof buf, r, 8));
        CK(MPI_Recv(r, 6, MPI_INT, 0, 4, W, MPI_STATUS_IGNORE));
        say_all("indexed: %s", fmt_ints(buf, sizeof buf, r, 6));
        CK(MPI_Recv(r, 6, MPI_INT, 0, 5, W, MPI_STATUS_IGNORE));
        say_all("indexed_block: %s", fmt_ints(buf, sizeof buf, r, 6));
        CK(MPI_Recv(r, 10, MPI_INT, 0, 6, W, &st));
        CK(MPI_Get_count(&st, contig, &count));
        CHECK(count == 2);
        say_all("2 x contig(5): %s", fmt_ints(buf, sizeof buf, r, 10));
    }
    if (rank == 0)
        for (int i = 0; i < 4; i++)
            say_all("-");

    /* array of structs with the resized type; partial receive + Get_elements */
    struct rec recs[3];
    memset(recs, 0, sizeof recs);
    if (rank == 0) {
        for (int i = 0; i < 3; i++) {
            recs[i].id = 100 + i;
            recs[i].weight = 1.25 * (i + 1);
            recs[i].tag[0] = (char)('a' + i);
            recs[i].tag[1] = (char)('x' + i);
            recs[i].tag[2] = '\0';
        }
        CK(MPI_Send(recs, 3, rec_t, 1, 7, W));
        /* 1 full struct + the int of a second one, as ints/doubles/chars */
        CK(MPI_Send(recs, 2, rec_t, 1, 8, W));
    } else {
        CK(MPI_Recv(recs, 3, rec_t, 0, 7, W, &st));
        CK(MPI_Get_count(&st, rec_t, &count));
        CHECK(count == 3 && recs[2].id == 102 && recs[2].weight == 3.75 && recs[1].tag[0] == 'b');
        say_all("structs: %d/%.2f/%s %d/%.2f/%s %d/%.2f/%s", recs[0].id, recs[0].weight,
                recs[0].tag, recs[1].id, recs[1].weight, recs[1].tag, recs[2].id, recs[2].weight,
                recs[2].tag);
        struct rec two[2];
        CK(MPI_Recv(two, 2, rec_t, 0, 8, W, &st));
        int elems;
        CK(MPI_Get_elements(&st, rec_t, &elems));
        CHECK(elems == 10);
    }
    if (rank == 0)
        say_all("-");

    /* subarray: send a 2x3 block of a 6x7 matrix into a 2x3 contiguous
     * array, and receive contiguous ints into a subarray of a zeroed matrix */
    int big[6][7], blk[6];
    char line[LINE_MAX_LEN];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 7; j++)
            big[i][j] = rank == 0 ? 100 * i + j : 0;
    if (rank == 0) {
        int vals[6] = {7, 8, 9, 10, 11, 12};
        CK(MPI_Send(big, 1, sub, 1, 9, W));
        CK(MPI_Send(vals, 6, MPI_INT, 1, 11, W));
        CK(MPI_Recv(blk, 6, MPI_INT, 1, 10, W, MPI_STATUS_IGNORE));
        snprintf(line, sizeof line, "subarray block +1 back: %s", fmt_ints(buf, sizeof buf, blk, 6));
    } else {
        CK(MPI_Recv(blk, 6, MPI_INT, 0, 9, W, MPI_STATUS_IGNORE));
        for (int i = 0; i < 6; i++)
            blk[i] += 1;
        CK(MPI_Recv(big, 1, sub, 0, 11, W, MPI_STATUS_IGNORE));
        CK(MPI_Send(blk, 6, MPI_INT, 0, 10, W));
        int nz = 0;
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 7; j++)
                nz += big[i][j] != 0;
        CHECK(nz == 6 && big[1][2] == 7 && big[2][4] == 12);
        snprintf(line, sizeof line, "subarray receive: nonzero=%d big[1][2]=%d big[2][4]=%d", nz,
                 big[1][2], big[2][4]);
    }
    say_all("%s", line);

    /* Pack/Unpack: an int header, a matrix column and two structs */
    int psz1, psz2, psz3;
    CK(MPI_Pack_size(1, MPI_INT, W, &psz1));
    CK(MPI_Pack_size(1, column, W, &psz2));
    CK(MPI_Pack_size(2, rec_t, W, &psz3));
    int cap = psz1 + psz2 + psz3;
    char *pbuf = malloc((size_t)cap);
    CHECK(pbuf != NULL);
    if (rank == 0) {
        int pos = 0, hdr = 2024;
        CK(MPI_Pack(&hdr, 1, MPI_INT, pbuf, cap, &pos, W));
        CK(MPI_Pack(&m[0][3], 1, column, pbuf, cap, &pos, W));
        CK(MPI_Pack(recs, 2, rec_t, pbuf, cap, &pos, W));
        CHECK(pos <= cap);
        CK(MPI_Send(pbuf, pos, MPI_PACKED, 1, 12, W));
    } else {
        CK(MPI_Probe(0, 12, W, &st));
        CK(MPI_Get_count(&st, MPI_PACKED, &count));
        CK(MPI_Recv(pbuf, count, MPI_PACKED, 0, 12, W, MPI_STATUS_IGNORE));
        int pos = 0, hdr = 0, col[4];
        struct rec pr[2];
        CK(MPI_Unpack(pbuf, count, &pos, &hdr, 1, MPI_INT, W));
        CK(MPI_Unpack(pbuf, count, &pos, col, 4, MPI_INT, W));
        CK(MPI_Unpack(pbuf, count, &pos, pr, 2, rec_t, W));
        CHECK(pos == count && hdr == 2024 && col[3] == 33 && pr[1].id == 101);
        say_all("unpacked hdr=%d column=%d %d %d %d rec1=%d/%.2f/%s", hdr, col[0], col[1], col[2],
                col[3], pr[1].id, pr[1].weight, pr[1].tag);
    }
    if (rank == 0)
        say_all("-");
    free(pbuf);

    /* Bcast with a derived type (collectives with derived types) */
    int bm[4][5];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            bm[i][j] = rank == 1 ? i * 5 + j : -1;
    CK(MPI_Bcast(&bm[0][1], 1, column, 1, W));
    CHECK(bm[2][1] == 11 && bm[2][2] == (rank == 1 ? 12 : -1));
    say("bcast of a vector column from rank 1: %d %d %d %d", bm[0][1], bm[1][1], bm[2][1], bm[3][1]);

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CK(MPI_Type_free(&all[i]));
    CHECK(all[0] == MPI_DATATYPE_NULL);
    return finish_ok();
}
