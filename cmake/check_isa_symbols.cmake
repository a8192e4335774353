# Fails the build when an ISA translation unit (csrc/kernels/avx*/) defines a weak symbol: an
# out-of-line copy of an inline or template function (std::vector members, say). The linker keeps
# one copy of each weak symbol for the whole program, so the one compiled with -mavx512* could
# run on a CPU without AVX-512 (csrc/include/onebit/scratch.h).
#   cmake -DNM=<nm> -DOBJECTS="a.o|b.o|..." -P check_isa_symbols.cmake
string(REPLACE "|" ";" objects "${OBJECTS}")
foreach(obj IN LISTS objects)
  if(NOT obj MATCHES "/kernels/avx[^/]*/")
    continue()
  endif()
  execute_process(COMMAND "${NM}" -C --defined-only "${obj}" OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_isa_symbols: '${NM}' failed on ${obj}")
  endif()
  string(REGEX MATCHALL "[^\n]* [WVu] [^\n]*" weak "${symbols}")
  # DW.ref.__gxx_personality_v0 is data, not code: the unwinder's pointer to libstdc++'s personality
  # routine (GCC emits it in some -O1 sanitizer builds). Whichever unit's copy the linker keeps, it
  # holds the same address, and nothing ISA-specific runs through it.
  list(FILTER weak EXCLUDE REGEX " V DW\\.ref\\.__gxx_personality_v0$")
  if(weak)
    string(REPLACE ";" "\n  " weak "${weak}")
    message(FATAL_ERROR "ISA translation unit ${obj} defines weak symbols, which another unit may "
                        "end up calling on a CPU without that ISA:\n  ${weak}\n"
                        "Keep std:: templates out of ISA units (see csrc/include/onebit/scratch.h).")
  endif()
endforeach()
