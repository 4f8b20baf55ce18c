/*
 * The one result type of hookd's look-ups and requests on a delivery
 * (journal, dispatcher, control socket). Library code returns these and
 * leaves the words to its caller; only main-level code prints.
 *
 * The non-negative values are the control socket's answer codes on the
 * wire ("CODE message\n"), so they never change.
 */
#ifndef HOOKD_RESULT_H
#define HOOKD_RESULT_H

enum result {
	RESULT_ERROR = -1,    /* the store failed (logged where it happened) */
	RESULT_OK = 0,        /* found, done, queued */
	RESULT_UNKNOWN = 1,   /* no such delivery */
	RESULT_PENDING = 2,   /* already queued, running or waiting for a retry */
	RESULT_BODY_CUT = 3,  /* its body was not kept whole: cannot run again */
	RESULT_AMBIGUOUS = 4, /* that id under several endpoints: name one */
	RESULT_NO_ENDPOINT = 5, /* its endpoint is not in the config: cannot run */
};

#endif
