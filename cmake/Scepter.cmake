# Shared compile flags and helpers for every Scepter target.

set(SCEPTER_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla -Wwrite-strings -Wimplicit-fallthrough)

add_compile_options(${SCEPTER_WARNINGS})
add_compile_definitions(_GNU_SOURCE)
if(SCEPTER_WERROR)
    add_compile_options(-Werror)
endif()
if(SCEPTER_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                        -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
# Coverage-guided fuzzing (clang): every module gets libFuzzer's coverage instrumentation; the
# fuzz targets alone link the libFuzzer driver (tests/fuzz/CMakeLists.txt).
if(SCEPTER_FUZZ)
    add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# A short tag naming this build tree: tests put it in their temporary directories' names
# (/tmp/scepter-test.<tag>.*) and pass it to every process they start (SCEPTER_TEST_TAG), so the
# final leftovers check finds what this suite left behind and nothing of another build's run.
string(MD5 _scepter_tag_md5 "${PROJECT_BINARY_DIR}")
string(SUBSTRING "${_scepter_tag_md5}" 0 8 SCEPTER_TEST_TAG)

# scepter_add_test(NAME target [ARGS ...] [FIXTURES fixture...] [ENV VAR=value...])
#   Registers a test with ctest. A sanitizer report or a UBSan "runtime error" anywhere in
#   the output fails the test even when Criterion's forked child swallowed the exit code.
function(scepter_add_test name target)
    cmake_parse_arguments(T "" "TIMEOUT" "ARGS;FIXTURES;ENV;LABELS" ${ARGN})
    add_test(NAME ${name} COMMAND ${target} ${T_ARGS})
    set(env "SCEPTER_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
            "SCEPTER_BINARY_DIR=${PROJECT_BINARY_DIR}"
            "SCEPTER_TEST_TAG=${SCEPTER_TEST_TAG}"
            "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=0"
            "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
            ${T_ENV})
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 300)
    endif()
    set_tests_properties(${name} PROPERTIES
        FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error"
        ENVIRONMENT "${env}"
        TIMEOUT ${T_TIMEOUT})
    # Every test runs between leftovers_setup and leftovers_check (tests/CMakeLists.txt).
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "leftovers;${T_FIXTURES}")
    if(T_LABELS)
        set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
    endif()
endfunction()
