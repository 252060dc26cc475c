# ctest install_consumer: installs a Lapis build into WORK_DIR/prefix, builds the consumer
# project against it with find_package(Lapis) and checks the consumer's output.
#   cmake -DLAPIS_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=... -DWORK_DIR=... [-DGENERATOR=...]
#         [-DCXX_COMPILER=...] -P run_consumer.cmake
foreach(var LAPIS_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run_step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: ${name} failed (${rc})\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

run_step("cmake --install" ${CMAKE_COMMAND} --install ${LAPIS_BUILD_DIR} --prefix ${prefix})
file(GLOB_RECURSE config_files ${prefix}/*/LapisConfig.cmake)
if(NOT config_files OR NOT EXISTS ${prefix}/include/lapis/core/tensor.h)
  message(FATAL_ERROR "install test: LapisConfig.cmake or include/lapis/core/tensor.h missing "
                      "under ${prefix}")
endif()

set(configure_args -S ${CONSUMER_SOURCE_DIR} -B ${build} -DCMAKE_BUILD_TYPE=Release
                   -DCMAKE_PREFIX_PATH=${prefix})
if(GENERATOR)
  list(APPEND configure_args -G ${GENERATOR})
endif()
if(CXX_COMPILER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
run_step("configure consumer" ${CMAKE_COMMAND} ${configure_args})
run_step("build consumer" ${CMAKE_COMMAND} --build ${build})
run_step("run consumer" ${build}/lapis_consumer)

message(STATUS "consumer printed: ${step_output}")
if(NOT step_output MATCHES "matmul \\[\\[19, 22\\], \\[43, 50\\]\\]")
  message(FATAL_ERROR "install test: unexpected consumer output:\n${step_output}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "install test passed")
