// provider.vpc: a warehouse in a private subnet needs the functions in that VPC. Set
// VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS (comma-separated) at deploy time; without them the
// functions run outside any VPC.
module.exports = () => {
  const subnets = (process.env.VPC_SUBNET_IDS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const groups = (process.env.VPC_SECURITY_GROUP_IDS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (!subnets.length) return null;
  if (!groups.length) throw new Error('VPC_SUBNET_IDS is set but VPC_SECURITY_GROUP_IDS is not');
  return { subnetIds: subnets, securityGroupIds: groups };
};
