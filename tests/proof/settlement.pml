/*
 * settlement.pml: a spin model of the settlement protocol of the filesearch
 * worker and of DLQ recovery, checking the product's central promise:
 *
 *   no message is deleted from a queue unless its outcome is durable
 *   somewhere else: indexed in OpenSearch, in S3 (retry store or DLQ
 *   archive), or another copy of it confirmed in a queue (the DLQ after a
 *   dead-letter send, the source queue after a redrive).
 *
 * It models the protocol, not the file layout (sqs_batch.settle, settle.py,
 * heartbeat.py, processor.py, runner.py, dlq/). One atomic step is one call
 * to SQS, S3 or OpenSearch (a batch call is one step) or a few calls whose
 * interleaving nobody can observe; each process is a loop of such steps over
 * a global phase, and Chaos may crash it between any two of them.
 *
 *   SQS       two queues, SRC and DLQ, of message copies (slots). A copy is
 *             visible or in flight (held by a process); it has a receive
 *             count, a receipt per delivery (the newest one deletes; an older
 *             one may or may not, as SQS documents) and the dlq-recoveries
 *             attribute. SRC's RedrivePolicy: receiving a copy already
 *             received MAXRCV times moves it to the DLQ instead.
 *             Time is abstracted away: a copy nobody acts on any more
 *             (released with a backoff, its delete failed, its holder
 *             crashed) is visible again at once; a copy a live worker holds
 *             can be received by another worker only after its heartbeat
 *             failed to extend it.
 *   Messages  NM S3 events. The last one fails permanently wherever it is
 *             processed (object gone, unparseable), the others never do
 *             (a single message may be either).
 *   Worker    NW worker hosts with one receive lane each. One batch is three
 *             steps:
 *               receive up to B receivable SRC copies (any subset) and
 *                 process them: per copy indexed (OpenSearch), retry-stored
 *                 (bulk index failed, retry store PUT confirmed), permanent,
 *                 or transient (S3 down, or index and retry store both down);
 *               1. SendMessageBatch of the permanent ones to the DLQ (each
 *                  entry confirmed or failed), 2. heartbeat.cancel for the
 *                  whole batch;
 *               3. DeleteMessageBatch of indexed, retry-stored and confirmed
 *                  dead-lettered copies (an entry may fail), 4. release the
 *                  rest (transient, unconfirmed) with a backoff.
 *   Heartbeat what matters of it: an extension that fails (the copy can then
 *             be delivered to the other worker while this one works on it),
 *             and an extension of a copy its worker has already settled.
 *   Recovery  one recovery thread over the DLQ, run after run, one copy at a
 *             time: receive a copy not seen in this run; already indexed
 *             (dedupe) -> delete; otherwise, by recovery count and strategy
 *             (any, per copy): archive (S3 PUT confirmed) -> delete; redrive
 *             (SendMessage to SRC with dlq-recoveries + 1, confirmed) ->
 *             delete; reindex in place (indexed / retry-stored -> delete,
 *             permanent -> archive, transient -> hold). A held copy is not
 *             received again in the same run; the run ends when nothing new
 *             is left, and the next one starts.
 *   Chaos     crashes a worker or recovery between any two of its steps; its
 *             in-flight copies come back, the process starts over.
 *
 * Fairness. Failed calls (DLQ send, delete, archive PUT, redrive send),
 * failed heartbeat extensions and transient verdicts share a budget of
 * FAILS; crashes have a budget of CRASHES: failures and crashes do not go on
 * forever. Steps that change nothing (a successful heartbeat extension, an
 * empty long poll) are left out, so every step makes progress and the
 * liveness check needs no process fairness on top of the budgets.
 * A send that stored the copy but reported a failure reaches the same states
 * as a confirmed send whose delete then failed, and is not modelled apart.
 *
 * Properties
 *   P1 (assert in del, "durable_elsewhere"): a copy is deleted only when its
 *      message is indexed, in S3, or has another copy in a queue.
 *   P2 (assert in Heartbeat): no extension of a copy its worker has already
 *      deleted or released (cancel before delete and release).
 *   P3 (assert in take): a worker receives a copy a second time only after a
 *      fault or a crash: without faults every copy is delivered once.
 *   capacity (assert in alloc): NS copy slots are enough for the budgets.
 *   ltl kept:    [] every message is durable or has a copy in a queue.
 *   ltl settled: <>[] every message is durable (index or S3) and no copy of
 *      it is left in any queue.
 *
 * Broken orderings (spin -D<NAME>):
 *   DELETE_BEFORE_DLQ_SEND          the incident report's script: delete the
 *                                   failed message, then send it to the DLQ
 *   DELETE_UNCONFIRMED_DLQ_SEND     delete a dead-letter although its DLQ
 *                                   send was not confirmed
 *   DELETE_BEFORE_HEARTBEAT_CANCEL  cancel the heartbeat after the deletes
 *                                   and releases (bbc/sqs-consumer's bug)
 *   ARCHIVE_AFTER_DELETE            recovery deletes, then writes the archive
 *   WORKER_DROPS_RECOVERIES         the worker's DLQ copy does not carry the
 *                                   dlq-recoveries attribute (as settle.py's
 *                                   dlq_attributes does today): redrive then
 *                                   never ends for a permanent failure
 *
 * Replay markers: every protocol step prints a line "@@ <actor> <step> m<n>"
 * (tests/proof/test_settlement_model.py reads them from `spin -t`).
 *
 *   spin -a settlement.pml && gcc -O1 -DNOREDUCE -o pan pan.c
 *   ./pan -N kept            # assertions and the invariant
 *   ./pan -a -N settled      # liveness (acceptance cycles)
 */

#ifndef NM
#define NM 2            /* messages (S3 events), 1..3 */
#endif
#ifndef NW
#define NW 1            /* worker hosts, 1..2 */
#endif
#ifndef B
#define B 2             /* worker batch size, 1..2 */
#endif
#ifndef MAXRCV
#define MAXRCV 2        /* RedrivePolicy maxReceiveCount */
#endif
#ifndef MAXATT
#define MAXATT 1        /* recover-dlq --max-attempts */
#endif
#ifndef FAILS
#define FAILS 1         /* fault budget */
#endif
#ifndef CRASHES
#define CRASHES 1       /* crash budget */
#endif
#ifndef NS
#define NS 8            /* copy slots, at most 8 */
#endif

#define NE (NW*B)       /* worker batch entries: entry k = w*B + i */
#define NONE 255

/* queues */
#define FREE 0
#define SRC 1
#define DLQ 2
/* holders of an in-flight copy: worker w is w+1 */
#define NOBODY 0
#define RC (NW+1)
/* receipts */
#define OK 0            /* the newest receipt of the copy */
#define STALE 1         /* the copy was received again since */
#define GONE 2          /* the copy was deleted or moved */
/* verdicts */
#define V_NONE 0
#define V_INDEXED 1
#define V_RETRY 2
#define V_PERM 3
#define V_TRANS 4

/* -- the queues: one slot per message copy -------------------------------- */
byte cq[NS];            /* FREE, SRC or DLQ */
byte cm[NS];            /* its logical message */
bool infl[NS];          /* in flight */
byte hold[NS];          /* who holds it in flight */
byte rcv[NS];           /* receives of this copy */
byte rec[NS];           /* dlq-recoveries attribute */
bool hbf[NS];           /* its heartbeat failed: receivable although held */
bool seen[NS];          /* received in the current recovery run: not again */

/* -- ghost: durable places of each message -------------------------------- */
bool indexed[NM];       /* its document is in OpenSearch */
bool s3[NM];            /* in S3: the retry store (retry-index/) or the archive (dlq-archive/) */
bool perm[NM];          /* its processing fails permanently (object gone, unparseable) */

bool ready;             /* init has put the messages into SRC */
bool durable_elsewhere; /* P1, evaluated inside the delete step */
byte faults;
byte crashes;
byte wphase[NW];        /* worker: 0 idle, 1 processed, 2 sent (3 in broken orderings) */

/* -- worker batches (global: the heartbeat reads them) -------------------- */
byte wslot[NE];         /* copy slot, NONE when the entry is unused */
byte wmsg[NE];
byte wrec[NE];          /* dlq-recoveries of the received copy */
byte wstat[NE];         /* its receipt: OK, STALE, GONE */
byte verdict[NE];
bool sent[NE];          /* DLQ send confirmed */
bool trk[NE];           /* tracked by the heartbeat */
bool wdone[NE];         /* deleted or released by its worker */

/* -- recovery: the copy whose delete is pending ---------------------------- */
byte rslot = NONE;
byte rx;                /* 1: to archive, 2: ARCHIVE_AFTER_DELETE's pending PUT */

/* -- slot predicates (slots 0..7; && short-circuits before an index >= NS) */
#define RCVBL(x,q) ((x) < NS && cq[x] == (q) && \
                    (!infl[x] || (hold[x] != NOBODY && hold[x] <= NW && hbf[x])))
#define URCV(x)    (RCVBL(x,DLQ) && !seen[x])
#define ARCV(f)    (((f) <= 0 && RCVBL(0,SRC)) || ((f) <= 1 && RCVBL(1,SRC)) || \
                    ((f) <= 2 && RCVBL(2,SRC)) || ((f) <= 3 && RCVBL(3,SRC)) || \
                    ((f) <= 4 && RCVBL(4,SRC)) || ((f) <= 5 && RCVBL(5,SRC)) || \
                    ((f) <= 6 && RCVBL(6,SRC)) || ((f) <= 7 && RCVBL(7,SRC)))
#define AURCV(f)   (((f) <= 0 && URCV(0)) || ((f) <= 1 && URCV(1)) || \
                    ((f) <= 2 && URCV(2)) || ((f) <= 3 && URCV(3)) || \
                    ((f) <= 4 && URCV(4)) || ((f) <= 5 && URCV(5)) || \
                    ((f) <= 6 && URCV(6)) || ((f) <= 7 && URCV(7)))
#define CP(x,m)    ((x) < NS && cq[x] != FREE && cm[x] == (m))
#define OTHER(m,c) (((c) != 0 && CP(0,m)) || ((c) != 1 && CP(1,m)) || \
                    ((c) != 2 && CP(2,m)) || ((c) != 3 && CP(3,m)) || \
                    ((c) != 4 && CP(4,m)) || ((c) != 5 && CP(5,m)) || \
                    ((c) != 6 && CP(6,m)) || ((c) != 7 && CP(7,m)))
#define EXISTS(m)  OTHER(m,NONE)
#define STORED(m)  (indexed[m] || s3[m])
#define PRESENT(m) (STORED(m) || EXISTS(m))
#define SETTLED(m) (STORED(m) && !EXISTS(m))
#define HS(x)      ((x) < NS && seen[x])
#define ANYSEEN     (HS(0) || HS(1) || HS(2) || HS(3) || HS(4) || HS(5) || HS(6) || HS(7))

#if NM == 1
#define ALL_PRESENT PRESENT(0)
#define ALL_SETTLED SETTLED(0)
#elif NM == 2
#define ALL_PRESENT (PRESENT(0) && PRESENT(1))
#define ALL_SETTLED (SETTLED(0) && SETTLED(1))
#else
#define ALL_PRESENT (PRESENT(0) && PRESENT(1) && PRESENT(2))
#define ALL_SETTLED (SETTLED(0) && SETTLED(1) && SETTLED(2))
#endif

ltl kept    { [] (!ready || ALL_PRESENT) }
ltl settled { <> [] ALL_SETTLED }

/* -- operations (each used inside one atomic step) ------------------------ */

/* a new visible copy of message am in queue aq (a confirmed send) */
inline alloc(aq, am, ar) {
  x = 0;
  do
  :: x < NS && cq[x] != FREE -> x++
  :: x >= NS || cq[x] == FREE -> break
  od;
  assert(x < NS);       /* capacity of the model: raise NS */
  cq[x] = aq; cm[x] = am; rec[x] = ar;
  x = 0
}

/* slot c was received again: its older receipts are stale */
inline stale_receipts(c) {
  for (x : 0 .. NE - 1) {
    if
    :: wslot[x] == c && wstat[x] == OK -> wstat[x] = STALE
    :: else
    fi
  };
  x = 0
}

/* slot c was deleted, or moved by the RedrivePolicy: its receipts are invalid */
inline gone_receipts(c) {
  for (x : 0 .. NE - 1) {
    if
    :: wslot[x] == c -> wstat[x] = GONE
    :: else
    fi
  };
  x = 0
}

/* back in its queue, visible (released, delete failed, holder crashed) */
inline visible(c) {
  infl[c] = 0; hold[c] = NOBODY; hbf[c] = 0
}

/* the delete of copy c succeeds: P1 (the caller printed the step) */
inline del(c) {
  durable_elsewhere = STORED(cm[c]) || OTHER(cm[c], c);
  assert(durable_elsewhere);                    /* P1 */
  durable_elsewhere = 0;
  gone_receipts(c);
  cq[c] = FREE; cm[c] = 0; infl[c] = 0; hold[c] = NOBODY; rcv[c] = 0;
  rec[c] = 0; hbf[c] = 0; seen[c] = 0
}

#define DURABLE(c) indexed[cm[c]], s3[cm[c]], OTHER(cm[c], c)

inline wdel(c) {
  printf("@@ W%d delete m%d from SRC: indexed=%d s3=%d other-copy=%d\n",
         w, cm[c], DURABLE(c));
  del(c)
}

inline rdel(c) {
  printf("@@ R delete m%d from DLQ: indexed=%d s3=%d other-copy=%d\n",
         cm[c], DURABLE(c));
  del(c)
}

/* worker w receives copy c into entry n of its batch, or the RedrivePolicy moves c */
inline take(c) {
  if
  :: rcv[c] >= MAXRCV ->
     printf("@@ SQS redrive-policy m%d to DLQ\n", cm[c]);
     gone_receipts(c);
     cq[c] = DLQ; rcv[c] = 0; visible(c)
  :: else ->
     assert(rcv[c] == 0 || faults + crashes > 0);   /* P3 */
     k = w * B + n;
     printf("@@ W%d receive m%d\n", w, cm[c]);
     stale_receipts(c);
     rcv[c] = 1 + rcv[c]; infl[c] = 1; hold[c] = w + 1; hbf[c] = 0;
     wslot[k] = c; wmsg[k] = cm[c]; wrec[k] = rec[c]; wstat[k] = OK;
     trk[k] = 1;                                    /* heartbeat.track */
     n++; k = 0
  fi
}

/* the batch is over (settled, or its worker crashed) */
inline finish() {
  for (i : 0 .. B - 1) {
    k = w * B + i; c = wslot[k];
    if
    :: c != NONE && wstat[k] == OK && hold[c] == w + 1 -> visible(c)
    :: else
    fi;
    wslot[k] = NONE; wmsg[k] = 0; wrec[k] = 0; wstat[k] = OK;
    verdict[k] = V_NONE; sent[k] = 0; trk[k] = 0; wdone[k] = 0
  };
  i = 0; k = 0; c = 0
}

inline cancel() {
  printf("@@ W%d cancel heartbeat\n", w);
  for (i : 0 .. B - 1) { trk[w * B + i] = 0 };
  i = 0
}

/* a DLQ send of entry k: confirmed or failed. (A send that stored the copy
   but reported a failure leads to the same states as a confirmed send whose
   delete then failed: a DLQ copy, and the source copy visible again.) */
inline dlq_send(r) {
  if
  :: alloc(DLQ, wmsg[k], r); sent[k] = 1;
     printf("@@ W%d dlq-send m%d ok\n", w, wmsg[k])
  :: faults < FAILS -> faults++;
     printf("@@ W%d dlq-send m%d failed\n", w, wmsg[k])
  fi
}

/* 1. SendMessageBatch of the permanent failures to the DLQ */
inline send_batch() {
  for (i : 0 .. B - 1) {
    k = w * B + i;
    if
#ifdef WORKER_DROPS_RECOVERIES
    :: verdict[k] == V_PERM -> dlq_send(0)
#else
    :: verdict[k] == V_PERM -> dlq_send(wrec[k])
#endif
    :: else
    fi
  };
  i = 0; k = 0
}

/* the incident's ordering: the permanent failures deleted before their send */
inline delete_permanent() {
  for (i : 0 .. B - 1) {
    k = w * B + i; c = wslot[k];
    if
    :: verdict[k] == V_PERM && wstat[k] != GONE -> wdel(c)
    :: else
    fi
  };
  i = 0; k = 0; c = 0
}

/* ... and then sent to the DLQ (they are settled either way) */
inline send_deleted() {
  for (i : 0 .. B - 1) {
    k = w * B + i;
    if
    :: verdict[k] == V_PERM -> dlq_send(wrec[k]); verdict[k] = V_NONE  /* settled */
    :: else
    fi
  };
  i = 0; k = 0; c = 0
}

/* 3. DeleteMessageBatch: indexed, retry-stored, confirmed dead-letters */
inline delete_batch() {
  for (i : 0 .. B - 1) {
    k = w * B + i; c = wslot[k];
    if
    :: verdict[k] == V_INDEXED || verdict[k] == V_RETRY ||
#ifdef DELETE_UNCONFIRMED_DLQ_SEND
       verdict[k] == V_PERM ->
#else
       (verdict[k] == V_PERM && sent[k]) ->
#endif
       wdone[k] = 1;
       if
       :: wstat[k] == OK -> wdel(c)
       :: wstat[k] == OK && faults < FAILS -> faults++;
          printf("@@ W%d delete m%d failed\n", w, wmsg[k]);
          visible(c)
       :: wstat[k] == STALE -> wdel(c)          /* an older receipt may delete */
       :: wstat[k] == STALE ->
          printf("@@ W%d delete m%d stale receipt, not deleted\n", w, wmsg[k])
       :: wstat[k] == GONE ->
          printf("@@ W%d delete m%d already gone\n", w, wmsg[k])
       fi
    :: else
    fi
  };
  i = 0; k = 0; c = 0
}

/* 4. ChangeMessageVisibilityBatch: release the rest with a backoff */
inline release_batch() {
  for (i : 0 .. B - 1) {
    k = w * B + i; c = wslot[k];
    if
    :: verdict[k] == V_TRANS || (verdict[k] == V_PERM && !sent[k]) ->
       wdone[k] = 1;
       printf("@@ W%d release m%d\n", w, wmsg[k]);
       if
       :: wstat[k] == OK && infl[c] -> visible(c)
       :: else                                  /* not in flight / not ours: refused */
       fi
    :: else
    fi
  };
  i = 0; k = 0; c = 0
}

/* -- processes ------------------------------------------------------------ */

/* Each process is a loop of guarded atomic steps over its global phase, so
   that Chaos can crash it between any two steps. */

proctype Worker(byte w) {
  byte i, k, c, n, m, x;

end_worker:
  do
  :: atomic {
       wphase[w] == 0 && ARCV(0) ->
       /* ReceiveMessage: one or more receivable copies, any subset of them */
       c = 0;
       do
       :: RCVBL(c, SRC) -> break                /* the batch's lowest slot */
       :: ARCV(c + 1) -> c++
       od;
       n = 0;
       take(c);
       c++;
       do
       :: c >= NS || n >= B -> break
       :: c < NS && n < B && RCVBL(c, SRC) -> take(c); c++
       :: c < NS && n < B -> c++               /* not in this batch */
       od;
       /* process: parse, S3 get, extract, one bulk index, retry store (the
          same step: a crash in between is a crash after verdicts that wrote
          nothing) */
       for (i : 0 .. B - 1) {
         k = w * B + i; m = wmsg[k];
         if
         :: wslot[k] == NONE -> skip
         :: wslot[k] != NONE && !perm[m] -> indexed[m] = 1; verdict[k] = V_INDEXED;
            printf("@@ W%d process m%d indexed\n", w, m)
         :: wslot[k] != NONE && !perm[m] -> s3[m] = 1; verdict[k] = V_RETRY;
            printf("@@ W%d process m%d retry-stored\n", w, m)
         :: wslot[k] != NONE && perm[m] -> verdict[k] = V_PERM;
            printf("@@ W%d process m%d permanent\n", w, m)
         :: wslot[k] != NONE && faults < FAILS -> faults++; verdict[k] = V_TRANS;
            printf("@@ W%d process m%d transient\n", w, m)
         fi
       };
       i = 0; k = 0; m = 0; c = 0; n = 0;
       wphase[w] = (wslot[w * B] != NONE -> 1 : 0)
     }
#if defined(DELETE_BEFORE_DLQ_SEND)
  /* the incident report's script: delete in `finally`, then send to the DLQ
     (the heartbeat is cancelled first, so that only the swap is wrong) */
  :: atomic { wphase[w] == 1 -> cancel(); delete_permanent(); wphase[w] = 3 }
  :: atomic { wphase[w] == 3 -> send_deleted(); wphase[w] = 2 }
  :: atomic { wphase[w] == 2 -> delete_batch(); release_batch(); finish(); wphase[w] = 0 }
#elif defined(DELETE_BEFORE_HEARTBEAT_CANCEL)
  :: atomic { wphase[w] == 1 -> send_batch(); wphase[w] = 2 }
  :: atomic { wphase[w] == 2 -> delete_batch(); release_batch(); wphase[w] = 3 }
  :: atomic { wphase[w] == 3 -> cancel(); finish(); wphase[w] = 0 }
#else
  /* settle, in the one order:
       1. SendMessageBatch of the permanent failures to the DLQ
       2. heartbeat.cancel for the whole batch
       3. DeleteMessageBatch of what is durable, 4. release the rest */
  :: atomic { wphase[w] == 1 -> send_batch(); cancel(); wphase[w] = 2 }
  :: atomic { wphase[w] == 2 -> delete_batch(); release_batch(); finish(); wphase[w] = 0 }
#endif
  od
}

/* The heartbeat threads of the workers (one nondeterministic process).
   An extension that succeeds changes nothing in this untimed model and is
   left out (a stutter step); what matters is an extension that fails, and
   an extension of a copy its worker has already settled (P2). */
#define LATE(x)  ((x) < NE && trk[x] && wdone[x])
#define FAILABLE(x) ((x) < NE && trk[x] && wstat[x] == OK && infl[wslot[x]] && \
                     hold[wslot[x]] == (x) / B + 1 && !hbf[wslot[x]])
proctype Heartbeat() {
  byte k;
end_heartbeat:
  do
  :: atomic {
       (LATE(0) || LATE(1) || LATE(2) || LATE(3)) ->
       if
       :: LATE(0) -> k = 0
       :: LATE(1) -> k = 1
       :: LATE(2) -> k = 2
       :: LATE(3) -> k = 3
       fi;
       printf("@@ HB extend m%d after its worker settled it\n", wmsg[k]);
       assert(!wdone[k]);       /* P2: no extension after its delete or release */
       k = 0
     }
#if NW > 1
  /* (with one worker a failed extension changes nothing: nobody else receives) */
  :: atomic {
       faults < FAILS && (FAILABLE(0) || FAILABLE(1) || FAILABLE(2) || FAILABLE(3)) ->
       if
       :: FAILABLE(0) -> k = 0
       :: FAILABLE(1) -> k = 1
       :: FAILABLE(2) -> k = 2
       :: FAILABLE(3) -> k = 3
       fi;
       faults++; hbf[wslot[k]] = 1;
       printf("@@ HB extend m%d failed\n", wmsg[k]);
       k = 0
     }
#endif
  od
}

/* DLQ recovery, run after run: one copy at a time. Step 1 receives it,
   classifies it and makes the write elsewhere (or deletes a dedupe hit, or
   holds it); step 2 deletes it after a confirmed write. */
#define PENDING (rslot != NONE)

inline rdelete() {
  if
  :: rdel(rslot)
  :: faults < FAILS -> faults++;
     printf("@@ R delete m%d failed\n", cm[rslot]);
     visible(rslot)                             /* back, received in a later run */
  fi;
  rslot = NONE
}

inline rhold() {
  printf("@@ R hold m%d\n", cm[c]);
  visible(c)                                    /* seen: not received again in this run */
}

proctype Recovery() {
  byte c, m, x;           /* x: scratch of alloc */

end_recovery:
  do
  :: atomic {
       !PENDING && AURCV(0) ->
       c = 0;
       do
       :: URCV(c) -> break
       :: AURCV(c + 1) -> c++
       od;
       m = cm[c];
       printf("@@ R receive m%d\n", m);
       infl[c] = 1; hold[c] = RC; seen[c] = 1;
       if
       :: indexed[m] ->
          printf("@@ R dedupe m%d already indexed\n", m);
          rslot = c; rdelete()
       :: !indexed[m] ->
          if
          :: rec[c] >= MAXATT -> printf("@@ R max-attempts m%d: archive\n", m); rx = 1
          :: rec[c] < MAXATT -> printf("@@ R archive-only m%d\n", m); rx = 1
          :: rec[c] < MAXATT ->
             /* strategy redrive: SendMessage to SRC, confirmed */
             if
             :: alloc(SRC, m, rec[c] + 1); rslot = c;
                printf("@@ R redrive-send m%d ok\n", m)
             :: faults < FAILS -> faults++;
                printf("@@ R redrive-send m%d failed\n", m); rhold()
             fi
          :: rec[c] < MAXATT ->
             /* strategy reindex: the worker's processor, in place */
             if
             :: !perm[m] -> indexed[m] = 1; rslot = c; printf("@@ R reindex m%d indexed\n", m)
             :: !perm[m] -> s3[m] = 1; rslot = c; printf("@@ R reindex m%d retry-stored\n", m)
             :: perm[m] -> printf("@@ R reindex m%d permanent: archive\n", m); rx = 1
             :: faults < FAILS -> faults++;
                printf("@@ R reindex m%d transient\n", m); rhold()
             fi
          fi;
          if
          :: rx == 1 ->
#ifdef ARCHIVE_AFTER_DELETE
             rslot = c; rx = 2                   /* delete first, then the PUT */
#else
             if
             :: s3[m] = 1; rslot = c; printf("@@ R archive-put m%d ok\n", m)
             :: faults < FAILS -> faults++;
                printf("@@ R archive-put m%d failed\n", m); rhold()
             fi
#endif
          :: else
          fi
       fi;
       c = 0; m = 0;
#ifndef ARCHIVE_AFTER_DELETE
       rx = 0
#else
       if
       :: rx == 1 -> rx = 0
       :: else
       fi
#endif
     }
#ifdef ARCHIVE_AFTER_DELETE
  :: atomic {
       PENDING && rx != 2 -> rdelete()
     }
  :: atomic {
       PENDING && rx == 2 ->
       m = cm[rslot];
       rdelete();
       if
       :: s3[m] = 1; printf("@@ R archive-put m%d ok\n", m)
       :: faults < FAILS -> faults++; printf("@@ R archive-put m%d failed\n", m)
       fi;
       rx = 0; m = 0
     }
#else
  :: atomic { PENDING -> rdelete() }
#endif
  :: atomic {
       !PENDING && !AURCV(0) && ANYSEEN ->
       /* nothing new to receive: the run ends, what it held is released */
       printf("@@ R run ends\n");
       for (c : 0 .. NS - 1) { seen[c] = 0 };
       c = 0
     }
  od
}

/* Crashes: a worker or recovery, between any two of its steps. */
inline crash_worker() {
  printf("@@ W%d crash\n", w);
  finish();
  wphase[w] = 0
}

proctype Chaos() {
  byte w, i, k, c;
end_chaos:
  do
  /* (a process with nothing in hand loses nothing by crashing) */
  :: atomic { crashes < CRASHES && wphase[0] != 0 -> crashes++; w = 0; crash_worker(); w = 0 }
#if NW > 1
  :: atomic { crashes < CRASHES && wphase[1] != 0 -> crashes++; w = 1; crash_worker(); w = 0 }
#endif
  :: atomic {
       crashes < CRASHES && (PENDING || ANYSEEN) -> crashes++;
       printf("@@ R crash\n");
       for (c : 0 .. NS - 1) {
         if
         :: cq[c] != FREE && hold[c] == RC -> visible(c)
         :: else
         fi;
         seen[c] = 0
       };
       rslot = NONE; rx = 0; c = 0
     }
  od
}

init {
  byte i;
  atomic {
    for (i : 0 .. NE - 1) { wslot[i] = NONE };
    for (i : 0 .. NM - 1) { cq[i] = SRC; cm[i] = i };
    /* the last message fails permanently, the others can be indexed (one
       message alone may be either) */
#if NM == 1
    if
    :: perm[0] = 1
    :: perm[0] = 0
    fi;
#else
    perm[NM - 1] = 1;
#endif
    for (i : 0 .. NW - 1) { run Worker(i) };
    i = 0;
    run Heartbeat();
    run Recovery();
    run Chaos();
    ready = 1
  }
}
