/*
 * Compiler attributes shared by every module: results that must be checked, printf-style
 * format checking and functions that do not return.
 */
#ifndef SCEPTER_COMMON_ATTR_H
#define SCEPTER_COMMON_ATTR_H

#define WUR          __attribute__((warn_unused_result))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NORETURN     _Noreturn
#define UNUSED       __attribute__((unused))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
