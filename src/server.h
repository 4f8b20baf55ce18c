#ifndef HOOKD_SERVER_H
#define HOOKD_SERVER_H
#endif
