#ifndef OPENMM_TIMEWARP_BASE64_H_
#define OPENMM_TIMEWARP_BASE64_H_

#include <string>

namespace TimewarpPlugin {

/** Standard base64 (RFC 4648) with padding: bytes as text, for XML attributes and archive entries. */
std::string encodeBase64(const std::string& data);

/**
 * Decode base64 text written by encodeBase64().
 *
 * @param text  the text
 * @param what  what the text is, named in the error message
 * @throws OpenMM::OpenMMException if the text is not valid base64
 */
std::string decodeBase64(const std::string& text, const std::string& what);

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_BASE64_H_*/
