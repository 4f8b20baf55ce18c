/* journal: not written yet. */
#include "journal.h"
extern int hookd_journal_unwritten;
