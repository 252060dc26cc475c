# lapis_add_library(NAME SOURCES ... [CUDA_SOURCES ...] [CPU_ONLY_SOURCES ...])
# Creates target lapis_NAME with alias lapis::NAME and export name NAME. CUDA sources are
# compiled only when CUDA is enabled, CPU_ONLY sources only when it is not. A part with no
# sources yet is an INTERFACE target, so the name exists for users from the start.
function(lapis_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;CUDA_SOURCES;CPU_ONLY_SOURCES" ${ARGN})
  set(sources ${ARG_SOURCES})
  if(LAPIS_CUDA_ENABLED)
    list(APPEND sources ${ARG_CUDA_SOURCES})
  else()
    list(APPEND sources ${ARG_CPU_ONLY_SOURCES})
  endif()
  set(target lapis_${name})
  if(sources)
    add_library(${target} STATIC ${sources})
    target_include_directories(${target} PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/lapis>)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
      $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall>)
    set_target_properties(${target} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/lapis>)
  endif()
  add_library(lapis::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  set_property(GLOBAL APPEND PROPERTY LAPIS_LIBRARY_TARGETS ${target})
endfunction()

# Links dependencies PUBLIC for compiled targets and INTERFACE for header-only ones.
function(lapis_link name)
  get_target_property(type lapis_${name} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_link_libraries(lapis_${name} INTERFACE ${ARGN})
  else()
    target_link_libraries(lapis_${name} PUBLIC ${ARGN})
  endif()
endfunction()
