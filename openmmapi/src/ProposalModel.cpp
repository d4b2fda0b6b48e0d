#include "ProposalModel.h"
#include "TorchScriptProposalModel.h"

using namespace TimewarpPlugin;
using namespace std;

shared_ptr<ProposalModel> ProposalModel::load(const string& file) {
    // TorchScript is the only format so far; an AOTInductor package would be told apart here by its suffix.
    return make_shared<TorchScriptProposalModel>(file);
}
