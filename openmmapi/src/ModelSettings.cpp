#include "ModelSettings.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

namespace {

/** A JSON value that is not an object: its kind ('n'umber, 'b'oolean, 's'tring, 'z' null, 'a'rray) and its text. */
struct Scalar {
    char kind;
    string text;
};

/**
 * A small JSON reader that flattens a document into dotted key paths ("integrator.hmc_interval"),
 * enough for the few numeric and boolean settings the integrator reads, without a JSON dependency.
 * Arrays are checked for syntax but their contents are not kept.
 */
class FlatJsonReader {
public:
    FlatJsonReader(const string& text, const string& source) : text(text), source(source), pos(0) {
    }
    map<string, Scalar> read() {
        map<string, Scalar> values;
        value("", values);
        skipSpace();
        if (pos != text.size())
            fail("unexpected text after the JSON value");
        return values;
    }
private:
    void fail(const string& problem) const {
        throw OpenMMException("TimewarpIntegrator: model file " + source + ": its " + ModelSettings::entryName() +
                              " entry is not valid JSON (" + problem + " at offset " + to_string(pos) + ")");
    }
    void skipSpace() {
        while (pos < text.size() && strchr(" \t\r\n", text[pos]) != NULL)
            pos++;
    }
    void expect(char c) {
        skipSpace();
        if (pos >= text.size() || text[pos] != c)
            fail(string("expected '") + c + "'");
        pos++;
    }
    bool consume(char c) {
        skipSpace();
        if (pos < text.size() && text[pos] == c) {
            pos++;
            return true;
        }
        return false;
    }
    bool literal(const char* word) {
        size_t n = strlen(word);
        if (text.compare(pos, n, word) != 0)
            return false;
        pos += n;
        return true;
    }
    void value(const string& path, map<string, Scalar>& values) {
        skipSpace();
        if (pos >= text.size())
            fail("unexpected end");
        char c = text[pos];
        if (c == '{')
            object(path, values);
        else if (c == '[') {
            array();
            values[path] = {'a', ""};
        }
        else if (c == '"')
            values[path] = {'s', str()};
        else if (literal("true"))
            values[path] = {'b', "true"};
        else if (literal("false"))
            values[path] = {'b', "false"};
        else if (literal("null"))
            values[path] = {'z', ""};
        else
            values[path] = {'n', number()};
    }
    void object(const string& path, map<string, Scalar>& values) {
        expect('{');
        if (consume('}'))
            return;
        do {
            skipSpace();
            string key = str();
            expect(':');
            value(path.empty() ? key : path + "." + key, values);
        } while (consume(','));
        expect('}');
    }
    void array() {
        expect('[');
        if (consume(']'))
            return;
        map<string, Scalar> ignored;
        do
            value("", ignored);
        while (consume(','));
        expect(']');
    }
    string str() {
        expect('"');
        string result;
        while (pos < text.size() && text[pos] != '"') {
            if (text[pos] == '\\') {
                // Escapes only matter for keys and values this reader compares; \uXXXX is kept verbatim.
                if (++pos >= text.size())
                    break;
                const char* escapes = "n\nt\tr\rb\bf\f";
                const char* found = strchr(escapes, text[pos]);
                result += (found != NULL && (found - escapes) % 2 == 0) ? found[1] : text[pos];
                pos++;
            }
            else
                result += text[pos++];
        }
        if (pos >= text.size())
            fail("unterminated string");
        pos++;
        return result;
    }
    string number() {
        size_t start = pos;
        while (pos < text.size() && strchr("+-0123456789.eE", text[pos]) != NULL)
            pos++;
        if (pos == start)
            fail("unexpected character");
        return text.substr(start, pos - start);
    }
    const string& text;
    const string& source;
    size_t pos;
};

/** The number stored at a key, or NaN (with found false) if the key is absent. */
double numberAt(const map<string, Scalar>& values, const string& key, const string& source, bool& found) {
    auto entry = values.find(key);
    found = (entry != values.end());
    if (!found)
        return NAN;
    char* end;
    double value = entry->second.kind == 'n' ? strtod(entry->second.text.c_str(), &end) : NAN;
    if (entry->second.kind != 'n' || *end != '\0')
        throw OpenMMException("TimewarpIntegrator: model file " + source + ": " + ModelSettings::entryName() + " key " + key +
                              " must be a number");
    return value;
}

void invalid(const string& source, const string& key, const string& requirement) {
    throw OpenMMException("TimewarpIntegrator: model file " + source + ": " + ModelSettings::entryName() + " key " + key +
                          " must be " + requirement);
}

} // namespace

ModelSettings ModelSettings::parse(const string& json, const string& source) {
    ModelSettings settings;
    if (json.empty())
        return settings;
    map<string, Scalar> values = FlatJsonReader(json, source).read();
    bool found;
    double interval = numberAt(values, "integrator.hmc_interval", source, found);
    if (found) {
        if (!(interval >= 0 && interval == floor(interval) && interval < 1e9))
            invalid(source, "integrator.hmc_interval", "a non-negative integer");
        settings.hmcInterval = (int) interval;
    }
    double steps = numberAt(values, "integrator.hmc_steps", source, found);
    if (found) {
        if (!(steps >= 1 && steps == floor(steps) && steps < 1e9))
            invalid(source, "integrator.hmc_steps", "a positive integer");
        settings.hmcSteps = (int) steps;
    }
    double stepSize = numberAt(values, "integrator.hmc_step_size_ps", source, found);
    if (found) {
        if (!(stepSize > 0 && isfinite(stepSize)))
            invalid(source, "integrator.hmc_step_size_ps", "positive and finite");
        settings.hmcStepSize = stepSize;
    }
    double minimumMass = numberAt(values, "integrator.hmc_minimum_mass_amu", source, found);
    if (found) {
        if (!(minimumMass >= 0 && isfinite(minimumMass)))
            invalid(source, "integrator.hmc_minimum_mass_amu", "non-negative and finite");
        settings.hmcMinimumMass = minimumMass;
    }
    auto fast = values.find("needs_fast_coordinate_moves");
    if (fast != values.end()) {
        if (fast->second.kind != 'b')
            invalid(source, "needs_fast_coordinate_moves", "true or false");
        settings.needsFastCoordinateMoves = (fast->second.text == "true");
    }
    return settings;
}
