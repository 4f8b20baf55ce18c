#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H
#endif
