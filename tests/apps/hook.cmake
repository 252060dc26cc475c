# Wiring for tests/apps and tests/install, included at the end of tests/CMakeLists.txt.
#
# tests/apps/test_*.cpp become apps_test_* executables through lapis_add_test_suite(apps); here
# they also get the app's support library (digits loader, train-mlp loop) and the path of the
# `lapis` program, which must be built before they run.
if(TARGET lapis_app_support)
  file(GLOB lapis_app_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.cpp)
  foreach(source ${lapis_app_tests})
    get_filename_component(stem ${source} NAME_WE)
    if(TARGET apps_${stem})
      target_link_libraries(apps_${stem} PRIVATE lapis_app_support)
      target_compile_definitions(apps_${stem} PRIVATE LAPIS_BINARY="$<TARGET_FILE:lapis>")
      add_dependencies(apps_${stem} lapis)
    endif()
  endforeach()
endif()

# Install test: `cmake --install` this build into a scratch prefix, then configure, build and run
# a separate project that does find_package(Lapis) (tests/install/consumer).
add_test(NAME install_consumer
  COMMAND ${CMAKE_COMMAND}
          -DLAPIS_BUILD_DIR=${PROJECT_BINARY_DIR}
          -DCONSUMER_SOURCE_DIR=${PROJECT_SOURCE_DIR}/tests/install/consumer
          -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install_consumer
          -DGENERATOR=${CMAKE_GENERATOR}
          -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
          -P ${PROJECT_SOURCE_DIR}/tests/install/run_consumer.cmake)
set_tests_properties(install_consumer PROPERTIES TIMEOUT 900 LABELS install)
