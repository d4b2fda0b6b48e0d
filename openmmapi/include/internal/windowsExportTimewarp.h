#ifndef OPENMM_WINDOWSEXPORTTIMEWARP_H_
#define OPENMM_WINDOWSEXPORTTIMEWARP_H_

/*
 * Symbol visibility for the Timewarp plugin libraries: dllexport/dllimport on Windows,
 * default visibility elsewhere.
 */
#if defined(_MSC_VER)
    #if defined(OPENMM_TIMEWARP_BUILDING_SHARED_LIBRARY)
        #define OPENMM_EXPORT_TIMEWARP __declspec(dllexport)
    #else
        #define OPENMM_EXPORT_TIMEWARP __declspec(dllimport)
    #endif
#else
    #define OPENMM_EXPORT_TIMEWARP __attribute__((visibility("default")))
#endif

#endif /*OPENMM_WINDOWSEXPORTTIMEWARP_H_*/
