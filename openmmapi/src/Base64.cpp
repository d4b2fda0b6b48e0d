#include "internal/Base64.h"
#include "openmm/OpenMMException.h"
#include <algorithm>

using namespace OpenMM;
using namespace std;

static const char BASE64_DIGITS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

string TimewarpPlugin::encodeBase64(const string& data) {
    string text;
    text.reserve(4 * ((data.size() + 2) / 3));
    for (size_t i = 0; i < data.size(); i += 3) {
        size_t n = min<size_t>(3, data.size() - i);
        unsigned int group = 0;
        for (size_t j = 0; j < 3; j++)
            group = (group << 8) | (j < n ? (unsigned char) data[i + j] : 0);
        for (size_t j = 0; j < 4; j++)
            text += (j <= n ? BASE64_DIGITS[(group >> (18 - 6 * j)) & 63] : '=');
    }
    return text;
}

string TimewarpPlugin::decodeBase64(const string& text, const string& what) {
    int values[256];
    fill(values, values + 256, -1);
    for (int i = 0; i < 64; i++)
        values[(unsigned char) BASE64_DIGITS[i]] = i;
    size_t length = text.size();
    while (length > 0 && text[length - 1] == '=' && text.size() - length < 2)
        length--;
    if (text.size() % 4 != 0 || length % 4 == 1)
        throw OpenMMException("TimewarpIntegrator: " + what + " is not valid base64");
    string data;
    data.reserve(3 * length / 4);
    unsigned int group = 0;
    int bits = 0;
    for (size_t i = 0; i < length; i++) {
        int value = values[(unsigned char) text[i]];
        if (value < 0)
            throw OpenMMException("TimewarpIntegrator: " + what + " is not valid base64");
        group = (group << 6) | value;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            data += (char) ((group >> bits) & 255);
        }
    }
    return data;
}
