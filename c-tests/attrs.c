/* ranks: 2 */
/* ferry-test-refuses: attribute keyval|some ranks have freed */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Attribute caching: Comm_create_keyval with user copy/delete callbacks,
 * MPI_COMM_NULL_COPY_FN, MPI_COMM_DUP_FN, set/get/delete across Comm_dup and
 * Comm_free, replacing a value, predefined attributes (MPI_TAG_UB), and a
 * Type keyval with Type_dup. */
#include "common.h"

static int copies, deletes, type_copies, type_deletes;

struct counter {
    int value;
    int generation;
};

/* the communicator being duplicated: the copy callback must be handed
 * this very handle (the program's own, as MPI gave it) */
static MPI_Comm dup_source = MPI_COMM_NULL;
static int copy_saw_source = 0;

/* copy callback: the new communicator gets a fresh object one generation on */
static int copy_cb(MPI_Comm oldcomm, int keyval, void *extra, void *in, void *out, int *flag)
{
    (void)keyval;
    copy_saw_source += (oldcomm == dup_source);
    CHECK(*(int *)extra == 4242);
    const struct counter *old = in;
    struct counter *c = malloc(sizeof *c);
    CHECK(c != NULL);
    c->value = old->value + 1;
    c->generation = old->generation + 1;
    *(void **)out = c;
    *flag = 1;
    copies++;
    return MPI_SUCCESS;
}

static int delete_cb(MPI_Comm comm, int keyval, void *val, void *extra)
{
    (void)comm;
    (void)keyval;
    CHECK(*(int *)extra == 4242);
    free(val);
    deletes++;
    return MPI_SUCCESS;
}

static int type_copy_cb(MPI_Datatype t, int keyval, void *extra, void *in, void *out, int *flag)
{
    (void)t;
    (void)keyval;
    (void)extra;
    *(void **)out = in;
    *flag = 1;
    type_copies++;
    return MPI_SUCCESS;
}

static int type_delete_cb(MPI_Datatype t, int keyval, void *val, void *extra)
{
    (void)t;
    (void)keyval;
    (void)val;
    (void)extra;
    type_deletes++;
    return MPI_SUCCESS;
}

static struct counter *get_counter(MPI_Comm c, int key, int *found)
{
    struct counter *p = NULL;
    CK(MPI_Comm_get_attr(c, key, &p, found));
    return *found ? p : NULL;
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    static int extra = 4242;
    int found;

    int key, key_nocopy, key_dupfn;
    CK(MPI_Comm_create_keyval(copy_cb, delete_cb, &key, &extra));
    CK(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, MPI_COMM_NULL_DELETE_FN, &key_nocopy, NULL));
    CK(MPI_Comm_create_keyval(MPI_COMM_DUP_FN, MPI_COMM_NULL_DELETE_FN, &key_dupfn, NULL));

    MPI_Comm c1, c2, c3;
    CK(MPI_Comm_dup(MPI_COMM_WORLD, &c1));
    struct counter *a = malloc(sizeof *a);
    CHECK(a != NULL);
    a->value = 100 + rank;
    a->generation = 0;
    CK(MPI_Comm_set_attr(c1, key, a));
    static int plain_value = 7, dupfn_value = 9;
    CK(MPI_Comm_set_attr(c1, key_nocopy, &plain_value));
    CK(MPI_Comm_set_attr(c1, key_dupfn, &dupfn_value));

    struct counter *g = get_counter(c1, key, &found);
    CHECK(found && g == a);
    say("set/get on c1: found=%d value=%d", found, g->value);

    /* dup: copy_cb runs, NULL_COPY drops, DUP_FN shares the pointer */
    dup_source = c1;
    CK(MPI_Comm_dup(c1, &c2));
    say("copy callback given the duplicated communicator's handle: %s",
        copy_saw_source == 1 ? "yes" : "no");
    struct counter *g2 = get_counter(c2, key, &found);
    CHECK(found && g2 != a && g2->value == a->value + 1 && g2->generation == 1);
    int *pn;
    int found_nocopy, found_dupfn;
    CK(MPI_Comm_get_attr(c2, key_nocopy, &pn, &found_nocopy));
    CK(MPI_Comm_get_attr(c2, key_dupfn, &pn, &found_dupfn));
    CHECK(!found_nocopy && found_dupfn && pn == &dupfn_value);
    say("after dup c1->c2: copies=%d", copies);
    say_all("c2 value=%d generation=%d nullcopy found=%d dupfn found=%d same ptr=%d", g2->value,
            g2->generation, found_nocopy, found_dupfn, pn == &dupfn_value);

    /* dup of the dup */
    CK(MPI_Comm_dup(c2, &c3));
    struct counter *g3 = get_counter(c3, key, &found);
    CHECK(found && g3->generation == 2);
    say("after dup c2->c3: copies=%d c3 generation=%d value=%d", copies, g3->generation, g3->value);

    /* communication on the dups still works */
    int s = rank + 1, t = 0;
    CK(MPI_Allreduce(&s, &t, 1, MPI_INT, MPI_SUM, c3));
    CHECK(t == 3);

    /* replacing a value runs delete on the old one */
    struct counter *b = malloc(sizeof *b);
    CHECK(b != NULL);
    b->value = 500;
    b->generation = 9;
    CK(MPI_Comm_set_attr(c2, key, b));
    say("after replacing c2's value: deletes=%d", deletes);
    g2 = get_counter(c2, key, &found);
    CHECK(found && g2 == b);

    /* explicit delete */
    CK(MPI_Comm_delete_attr(c3, key));
    g3 = get_counter(c3, key, &found);
    CHECK(!found);
    say("after delete_attr on c3: deletes=%d found=%d", deletes, found);

    /* free runs delete for the remaining value */
    CK(MPI_Comm_free(&c2));
    say("after free c2: deletes=%d", deletes);
    CK(MPI_Comm_free(&c3));
    say("after free c3 (no value left): deletes=%d", deletes);

    /* attribute on MPI_COMM_WORLD */
    static int wv = 31;
    int *wp;
    CK(MPI_Comm_set_attr(MPI_COMM_WORLD, key_nocopy, &wv));
    CK(MPI_Comm_get_attr(MPI_COMM_WORLD, key_nocopy, &wp, &found));
    CHECK(found && wp == &wv && *wp == 31);
    CK(MPI_Comm_delete_attr(MPI_COMM_WORLD, key_nocopy));

    /* predefined attributes */
    int *tag_ub;
    CK(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found));
    CHECK(found && *tag_ub >= 32767);
    say("MPI_TAG_UB found=%d >=32767: %s", found, *tag_ub >= 32767 ? "yes" : "no");

    /* free keyvals while c1 still holds attributes (allowed) */
    CK(MPI_Comm_free_keyval(&key));
    CHECK(key == MPI_KEYVAL_INVALID);
    CK(MPI_Comm_free_keyval(&key_nocopy));
    CK(MPI_Comm_free_keyval(&key_dupfn));
    CK(MPI_Comm_free(&c1));
    say("after free c1: copies=%d deletes=%d", copies, deletes);
    CHECK(copies == 2 && deletes == 4);

    /* datatype attributes */
    int tkey;
    CK(MPI_Type_create_keyval(type_copy_cb, type_delete_cb, &tkey, NULL));
    MPI_Datatype t1, t2;
    CK(MPI_Type_contiguous(3, MPI_INT, &t1));
    static int tv = 55;
    CK(MPI_Type_set_attr(t1, tkey, &tv));
    CK(MPI_Type_dup(t1, &t2));
    int *tp;
    CK(MPI_Type_get_attr(t2, tkey, &tp, &found));
    CHECK(found && tp == &tv);
    CK(MPI_Type_free(&t1));
    CK(MPI_Type_free(&t2));
    CK(MPI_Type_free_keyval(&tkey));
    CHECK(type_copies == 1 && type_deletes == 2);
    say("type attrs: copies=%d deletes=%d", type_copies, type_deletes);

    return finish_ok();
}
