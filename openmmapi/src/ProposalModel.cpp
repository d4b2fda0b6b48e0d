#include "ProposalModel.h"
#include "TorchScriptProposalModel.h"
#include "openmm/OpenMMException.h"
#include <fstream>
#include <sstream>

using namespace TimewarpPlugin;
using namespace std;

string ProposalModel::readFile(const string& file) {
    ifstream stream(file, ios::binary);
    stringstream data;
    if (stream.is_open())
        data << stream.rdbuf();
    if (!stream.is_open() || stream.bad())
        throw OpenMM::OpenMMException("TimewarpIntegrator: model file " + file + ": cannot be opened (missing or unreadable)");
    return data.str();
}

shared_ptr<ProposalModel> ProposalModel::loadFromBytes(const string& data, const string& source, const string& device) {
    // TorchScript is the only format so far; an AOTInductor package would be told apart here by its header.
    return make_shared<TorchScriptProposalModel>(data, source, device);
}

shared_ptr<ProposalModel> ProposalModel::load(const string& file, const string& device) {
    return loadFromBytes(readFile(file), file, device);
}
